"""BlessingGate's decision on plain data, and what it writes into its blessing."""

import json
import os

from tfx.types import standard_artifacts

from components.blessing_gate import (ALL_TASKS_BLESSED, VERDICT_FILE, decide, describe,
                                      write_verdict)

BLESSED = {'blessed': True, 'failures': [], 'missing_thresholds': False}
METRICS = {'auc': 0.71, 'mean_label': 0.2, 'example_count': 400.0}
AUC_BELOW_FLOOR = {'blessed': False, 'missing_thresholds': False, 'failures': [{
    'slice': 'Overall', 'metric': 'auc', 'is_change': False, 'value': 0.6123456,
    'threshold': {'valueThreshold': {'lowerBound': 0.99}}, 'message': ''}]}


def test_blesses_when_every_task_is_blessed():
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': BLESSED, 'ctcvr': BLESSED},
                               {'ctr': METRICS, 'ctcvr': METRICS})
    assert blessed and all(v['blessed'] for v in verdicts.values())


def test_one_refused_task_refuses_the_model_and_names_metric_value_and_bound():
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': AUC_BELOW_FLOOR, 'ctcvr': BLESSED},
                               {'ctr': METRICS, 'ctcvr': METRICS})
    assert not blessed and verdicts['ctcvr']['blessed']
    assert describe(verdicts['ctr']) == (
        'refused: auc = 0.6123 on Overall (bound {"valueThreshold": {"lowerBound": 0.99}})')


def test_refuses_when_a_task_has_no_evaluation():
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': BLESSED}, {'ctr': METRICS})
    assert not blessed and verdicts['ctr']['blessed']
    assert describe(verdicts['ctcvr']) == "refused: no evaluation for task 'ctcvr'"


def test_an_eval_split_with_one_class_judges_nothing():
    """TFMA blesses an AUC over one class; the gate does not."""
    blessed, verdicts = decide(
        ['ctr', 'ctcvr'], {'ctr': BLESSED, 'ctcvr': BLESSED},
        {'ctr': {**METRICS, 'mean_label': 1.0}, 'ctcvr': {**METRICS, 'mean_label': 0.0}})
    assert not blessed
    assert verdicts['ctr']['reason'] == 'no negatives in eval for ctr'
    assert verdicts['ctcvr']['reason'] == 'no positives in eval for ctcvr'
    # A regression task has no classes.
    blessed, _ = decide(['minutes'], {'minutes': BLESSED},
                        {'minutes': {'mean_squared_error': 3.0, 'mean_label': 0.0}})
    assert blessed


def test_the_blessing_carries_the_verdict_per_task(tmp_path):
    model, blessing = standard_artifacts.Model(), standard_artifacts.ModelBlessing()
    model.uri, blessing.uri = '/models/candidate', str(tmp_path)
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': BLESSED}, {'ctr': METRICS})
    write_verdict(model, {'ctr': '/evaluations/ctr'}, blessed, verdicts, blessing)
    assert blessing.get_int_custom_property('blessed') == 0
    assert blessing.get_int_custom_property(ALL_TASKS_BLESSED) == 0
    assert blessing.get_string_custom_property('current_model') == '/models/candidate'
    assert blessing.get_string_custom_property('verdict_ctr') == 'blessed'
    assert blessing.get_string_custom_property('verdict_ctcvr') == \
        "refused: no evaluation for task 'ctcvr'"
    with open(os.path.join(blessing.uri, VERDICT_FILE)) as f:
        written = json.load(f)
    assert written == {'blessed': False, 'model': '/models/candidate',
                       'evaluations': {'ctr': '/evaluations/ctr'}, 'tasks': verdicts}
    assert os.path.exists(tmp_path / 'NOT_BLESSED') and not os.path.exists(tmp_path / 'BLESSED')
