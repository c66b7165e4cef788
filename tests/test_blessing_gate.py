"""BlessingGate on the real TFMA evaluations of the default run."""

import json
import os

import pytest
from tfx.types import standard_artifacts

from components.blessing_gate import ALL_TASKS_BLESSED, VERDICT_FILE, Executor, evaluation_key


@pytest.fixture(scope='module')
def evaluations(default_runs):
    """{task: its Evaluator's output}."""
    first, _ = default_runs
    artifacts = {}
    for task in ('ctr', 'ctcvr'):
        artifacts[task] = standard_artifacts.ModelEvaluation()
        artifacts[task].uri = first.summary['tasks'][task]['evaluation']
    return artifacts


def _gate(evaluations, task_names, out_dir):
    model = standard_artifacts.Model()
    model.uri = '/models/candidate'
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(out_dir)
    inputs = {'model': [model]}
    inputs.update({evaluation_key(task): [artifact] for task, artifact in evaluations.items()})
    Executor().Do(inputs, {'blessing': [blessing]}, {'task_names': json.dumps(task_names)})
    with open(os.path.join(blessing.uri, VERDICT_FILE)) as f:
        return blessing, json.load(f)


def test_blesses_when_every_task_is_blessed(evaluations, tmp_path):
    blessing, verdict = _gate(evaluations, ['ctr', 'ctcvr'], tmp_path)
    assert blessing.get_int_custom_property('blessed') == 1
    assert blessing.get_int_custom_property(ALL_TASKS_BLESSED) == 1
    assert blessing.get_string_custom_property('current_model') == '/models/candidate'
    assert verdict['blessed'] and set(verdict['tasks']) == {'ctr', 'ctcvr'}
    assert blessing.get_string_custom_property('verdict_ctcvr') == 'blessed'
    assert os.path.exists(tmp_path / 'BLESSED')


def test_refuses_when_a_task_has_no_evaluation(evaluations, tmp_path):
    blessing, verdict = _gate({'ctr': evaluations['ctr']}, ['ctr', 'ctcvr'], tmp_path)
    assert blessing.get_int_custom_property('blessed') == 0
    assert blessing.get_int_custom_property(ALL_TASKS_BLESSED) == 0
    assert not verdict['blessed'] and verdict['tasks']['ctr']['blessed']
    assert blessing.get_string_custom_property('verdict_ctcvr') == \
        "refused: no evaluation for task 'ctcvr'"
    assert os.path.exists(tmp_path / 'NOT_BLESSED')
