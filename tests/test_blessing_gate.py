"""BlessingGate's decision on plain data, and what it writes into its blessing."""

import json
import os
import tempfile

import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_model_analysis.proto import validation_result_pb2
from tfx.types import standard_artifacts

from components.blessing_gate import (
    ALL_TASKS_BLESSED,
    VERDICT_FILE,
    decide,
    describe,
    task_verdict,
    write_verdict,
)
from pipeline.config import CalibrationBound, Gate, PipelineConfig, Task
from pipeline.evaluation import interval_tests


def _evaluator_verdict(result: validation_result_pb2.ValidationResult):
    """What the gate reads of a TFMA ValidationResult, written where and as TFMA's Evaluator
    writes it (a TFRecord file `validations-*` in the evaluation directory)."""
    with tempfile.TemporaryDirectory() as evaluation:
        path = os.path.join(evaluation, 'validations-00000-of-00001.tfrecord')
        with tf.io.TFRecordWriter(path) as writer:
            writer.write(result.SerializeToString())
        return task_verdict(evaluation)


def _failure(value: float, threshold: str, is_diff: bool = False):
    """A ValidationResult with one failing metric on the Overall slice."""
    result = validation_result_pb2.ValidationResult(validation_ok=False)
    failure = result.metric_validations_per_slice.add().failures.add()
    failure.metric_key.name = 'auc'
    failure.metric_key.is_diff = is_diff
    failure.metric_value.double_value.value = value
    text_format.Parse(threshold, failure.metric_threshold)
    return result


BLESSED = _evaluator_verdict(validation_result_pb2.ValidationResult(validation_ok=True))
METRICS = {'auc': 0.71, 'mean_label': 0.2, 'example_count': 400.0}
AUC_BELOW_FLOOR = _evaluator_verdict(_failure(
    0.6123456, 'value_threshold { lower_bound { value: 0.99 } }'))


def test_the_evaluator_verdict_is_read_from_tfmas_validation_result():
    assert BLESSED == {'blessed': True, 'failures': [], 'missing_thresholds': False}
    assert AUC_BELOW_FLOOR == {'blessed': False, 'missing_thresholds': False, 'failures': [{
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


@pytest.mark.parametrize('refusal', ['missing_thresholds: true',
                                     'missing_slices { feature_keys: "device" }'])
def test_tfmas_refusal_without_a_failing_metric_refuses(refusal):
    """TFMA refuses, with no metric failing, when a threshold's metric was not computed or a slice
    of the config is missing from the data: the verdict is TFMA's, not "no failures"."""
    verdict = _evaluator_verdict(text_format.Parse(
        f'validation_ok: false {refusal}', validation_result_pb2.ValidationResult()))
    assert verdict['blessed'] is False and verdict['failures'] == []
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': verdict, 'ctcvr': BLESSED},
                               {'ctr': METRICS, 'ctcvr': METRICS})
    assert not blessed and not verdicts['ctr']['blessed']


def test_refuses_when_a_task_has_no_evaluation():
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': BLESSED}, {'ctr': METRICS})
    assert not blessed and verdicts['ctr']['blessed']
    assert describe(verdicts['ctcvr']) == "refused: no evaluation for task 'ctcvr'"


def test_an_eval_split_with_one_class_judges_nothing():
    """TFMA blesses an AUC over one class; the gate does not."""
    blessed, verdicts = decide(
        ['ctr', 'ctcvr'], {'ctr': BLESSED, 'ctcvr': BLESSED},
        {'ctr': {**METRICS, 'mean_label': 1.0}, 'ctcvr': {**METRICS, 'mean_label': 0.0}},
        {}, {'ctr': SIGNIFICANT, 'ctcvr': SIGNIFICANT})
    assert not blessed
    assert verdicts['ctr']['reason'] == 'no negatives in eval for ctr'
    assert verdicts['ctcvr']['reason'] == 'no positives in eval for ctcvr'
    # A regression task has no classes.
    minutes = Task('minutes', 'minutes', type='regression', gate=Gate(max=9.0))
    blessed, _ = decide(['minutes'], {'minutes': BLESSED},
                        {'minutes': {'mean_squared_error': 3.0, 'mean_label': 0.0}}, {},
                        {'minutes': interval_tests(minutes)})
    assert blessed


def test_a_gate_on_the_group_auc_refuses_when_no_group_has_both_classes():
    """TFMA's threshold check of a NaN refuses too; the gate says why."""
    test = interval_tests(Task('ctr', 'click', gate=Gate(metric='gauc')))
    missing = {**METRICS, 'gauc': float('nan'), 'gauc_groups': 0.0, 'gauc_coverage': 0.0}
    blessed, verdicts = decide(['ctr'], {'ctr': BLESSED}, {'ctr': missing}, {}, {'ctr': test})
    assert not blessed
    assert verdicts['ctr']['reason'] == ('gauc is missing for ctr: no group of the eval split '
                                         '(evaluation.group_by) holds both classes')
    assert verdicts['ctr']['gate'] == {'metric': 'gauc', 'calibration': None}
    found = {**missing, 'gauc': 0.64, 'gauc_groups': 31.0, 'gauc_coverage': 0.4}
    assert decide(['ctr'], {'ctr': BLESSED}, {'ctr': found}, {}, {'ctr': test})[0]


def test_a_calibration_bound_refuses_only_when_the_whole_interval_is_outside_it():
    test = interval_tests(Task('ctr', 'click', gate=Gate(
        calibration=CalibrationBound(min=0.8, max=1.25))))
    def judged(lower, upper):
        found = {'calibration': {'value': (lower + upper) / 2, 'lower': lower, 'upper': upper}}
        return decide(['ctr'], {'ctr': BLESSED}, {'ctr': METRICS}, {'ctr': found},
                      {'ctr': test})
    assert judged(0.7, 0.9)[0] and judged(1.2, 1.4)[0]  # within noise of the bound
    blessed, verdicts = judged(1.3, 1.5)
    assert not blessed
    assert describe(verdicts['ctr']) == (
        'refused: calibration = 1.4 on Overall, 95% interval [+1.3000, +1.5000] '
        '(bound {"calibration": {"max": 1.25, "min": 0.8}})')
    assert not judged(0.5, 0.79)[0]


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


# What the pipeline gives the gate for a default binary task: AUC, `significant`, max_decrease
# 0.01 at 95%.
SIGNIFICANT = interval_tests(PipelineConfig().tasks[0])
# A change of the size two seeds give on a few hundred examples, and a clearly worse model.
NOISY_CHANGE = {'auc change': {'value': -0.018, 'lower': -0.049, 'upper': 0.013}}
WORSE = {'auc change': {'value': -0.21, 'lower': -0.262, 'upper': -0.158}}
# What TFMA writes for a change bound it checked on the point estimate (change_test: absolute).
CHANGE_FAILURE, = _evaluator_verdict(_failure(
    -0.018, 'change_threshold { absolute { value: -0.01 } direction: HIGHER_IS_BETTER }',
    is_diff=True))['failures']


def test_significant_change_test_blesses_a_change_within_noise():
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': BLESSED, 'ctcvr': BLESSED},
                               {'ctr': METRICS, 'ctcvr': METRICS},
                               {'ctr': NOISY_CHANGE, 'ctcvr': {}},
                               {'ctr': SIGNIFICANT, 'ctcvr': SIGNIFICANT})
    assert blessed
    assert verdicts['ctr']['change'] == {'metric': 'auc', 'confidence': 0.95,
                                         **NOISY_CHANGE['auc change']}
    # No baseline yet: nothing to compare.
    assert 'change' not in verdicts['ctcvr']


def test_significant_change_test_refuses_a_sure_decrease_with_the_interval_in_the_reason():
    blessed, verdicts = decide(['ctr', 'ctcvr'], {'ctr': BLESSED, 'ctcvr': BLESSED},
                               {'ctr': METRICS, 'ctcvr': METRICS}, {'ctr': WORSE, 'ctcvr': {}},
                               {'ctr': SIGNIFICANT, 'ctcvr': SIGNIFICANT})
    assert not blessed and not verdicts['ctr']['blessed'] and verdicts['ctcvr']['blessed']
    assert describe(verdicts['ctr']) == (
        'refused: auc change = -0.21 on Overall, 95% interval [-0.2620, -0.1580] '
        '(bound {"changeThreshold": {"absolute": -0.01, "test": "significant"}})')
    # The Evaluator's own verdict is left as it was.
    assert BLESSED['failures'] == []


def test_a_decrease_is_refused_only_when_the_whole_interval_is_beyond_max_decrease():
    just_inside = {'auc change': {'value': -0.05, 'lower': -0.09, 'upper': -0.0099}}
    just_beyond = {'auc change': {'value': -0.05, 'lower': -0.09, 'upper': -0.0101}}
    assert decide(['ctr'], {'ctr': BLESSED}, {'ctr': METRICS}, {'ctr': just_inside},
                  {'ctr': SIGNIFICANT})[0]
    assert not decide(['ctr'], {'ctr': BLESSED}, {'ctr': METRICS}, {'ctr': just_beyond},
                      {'ctr': SIGNIFICANT})[0]
    # Lower is better for a regression task's mean squared error.
    mse_test = interval_tests(Task('m', 'm', type='regression',
                                   gate=Gate(max=9.0, max_decrease=0.5)))
    worse = {'mean_squared_error change': {'value': 1.0, 'lower': 0.6, 'upper': 1.4}}
    noisy = {'mean_squared_error change': {'value': 1.0, 'lower': 0.4, 'upper': 1.6}}
    regression = {'mean_squared_error': 3.0, 'mean_label': 0.0}
    assert not decide(['m'], {'m': BLESSED}, {'m': regression}, {'m': worse}, {'m': mse_test})[0]
    assert decide(['m'], {'m': BLESSED}, {'m': regression}, {'m': noisy}, {'m': mse_test})[0]


def test_absolute_change_test_keeps_tfmas_verdict_and_adds_the_interval():
    refused = {'blessed': False, 'missing_thresholds': False, 'failures': [CHANGE_FAILURE]}
    absolute = {**SIGNIFICANT, 'test': 'absolute'}
    blessed, verdicts = decide(['ctr'], {'ctr': refused}, {'ctr': METRICS},
                               {'ctr': NOISY_CHANGE}, {'ctr': absolute})
    assert not blessed
    assert describe(verdicts['ctr']) == (
        'refused: auc change = -0.018 on Overall, 95% interval [-0.0490, +0.0130] '
        '(bound {"changeThreshold": {"absolute": -0.01, "direction": "HIGHER_IS_BETTER"}})')
    assert 'interval' not in CHANGE_FAILURE
