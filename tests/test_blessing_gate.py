"""BlessingGate on the real TFMA evaluations of the default run."""

import json
import os

import pytest
from tfx.types import standard_artifacts

from components.blessing_gate import VERDICT_FILE, BlessingGate


@pytest.fixture(scope='module')
def evaluations(default_runs):
    first, _ = default_runs
    artifacts = []
    for task in ('ctr', 'ctcvr'):
        artifact = standard_artifacts.ModelEvaluation()
        artifact.uri = first.summary['tasks'][task]['evaluation']
        artifacts.append(artifact)
    return artifacts


def _gate(evaluations, task_names, out_dir):
    model = standard_artifacts.Model()
    model.uri = '/models/candidate'
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(out_dir)
    BlessingGate.test_call(model=model, evaluations=evaluations, blessing=blessing,
                           task_names=json.dumps(task_names))
    with open(os.path.join(blessing.uri, VERDICT_FILE)) as f:
        return blessing, json.load(f)


def test_blesses_when_every_task_is_blessed(evaluations, tmp_path):
    blessing, verdict = _gate(evaluations, ['ctr', 'ctcvr'], tmp_path)
    assert blessing.get_int_custom_property('blessed') == 1
    assert blessing.get_string_custom_property('current_model') == '/models/candidate'
    assert verdict['blessed'] and set(verdict['tasks']) == {'ctr', 'ctcvr'}
    assert blessing.get_string_custom_property('verdict_ctcvr') == 'blessed'
    assert os.path.exists(tmp_path / 'BLESSED')


def test_refuses_when_a_task_has_no_evaluation(evaluations, tmp_path):
    blessing, verdict = _gate(evaluations[:1], ['ctr', 'ctcvr'], tmp_path)
    assert blessing.get_int_custom_property('blessed') == 0
    assert not verdict['blessed'] and verdict['tasks']['ctr']['blessed']
    assert blessing.get_string_custom_property('verdict_ctcvr') == \
        "refused: no evaluation for task 'ctcvr'"
    assert os.path.exists(tmp_path / 'NOT_BLESSED')
