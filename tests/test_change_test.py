"""The gate's change test through the real pipeline: a model retrained with another seed on the
same data is a change within noise and is blessed; a model whose ctr labels were shuffled in
training is refused with the interval in the reason (test_faults.py). The statistics on tiny data:
test_intervals.py; the decision on plain data: test_blessing_gate.py."""

import json

import pytest

from pipeline.run_report import sqlite_store

from helpers import SMALL_TRAINING, SPLIT_DATA, fork_output, run_pipeline

pytestmark = pytest.mark.e2e

OTHER_SEED = ['--set', 'model.seed=7']


@pytest.fixture(scope='module')
def other_seed_run(tmp_path_factory, small_data, default_runs):
    """After the default run pushed a model (in a copy of its metadata store): the same data and
    settings but another seed."""
    first, _ = default_runs
    output = fork_output(first, tmp_path_factory.mktemp('other_seed'))
    return run_pipeline(output, '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING,
                        *OTHER_SEED).check()


def test_a_model_retrained_with_another_seed_is_not_refused(other_seed_run):
    assert other_seed_run.states()['Trainer'] == 'COMPLETE'
    for task in ('ctr', 'ctcvr'):
        verdict = other_seed_run.summary['tasks'][task]['verdict']
        change = verdict['change']
        print(f"{task}: auc change {change['value']:+.4f}, {change['confidence']:.0%} interval "
              f"[{change['lower']:+.4f}, {change['upper']:+.4f}]")
        assert verdict['blessed'], json.dumps(verdict)
        assert change['metric'] == 'auc' and change['lower'] < change['value'] < change['upper']
    assert other_seed_run.summary['pushed_model'] is not None


def test_the_other_seed_is_judged_against_the_pushed_model_not_itself(default_runs,
                                                                       other_seed_run):
    first, _ = default_runs
    candidate = other_seed_run.summary['trained_model']['uri']
    assert candidate != first.summary['trained_model']['uri']
    store = sqlite_store(other_seed_run.summary['paths']['metadata'])
    evaluations = sorted(store.get_executions_by_type('components.evaluator.Evaluator'),
                         key=lambda execution: execution.id)[-2:]  # this run's, one per task
    events = store.get_events_by_execution_ids([e.id for e in evaluations])
    inputs = {(event.execution_id, event.path.steps[0].key): event.artifact_id
              for event in events if event.type == event.INPUT}
    for execution in evaluations:
        uris = {artifact.id: artifact.uri for artifact in store.get_artifacts_by_id(
            [inputs[execution.id, 'model'], inputs[execution.id, 'baseline_model']])}
        assert uris[inputs[execution.id, 'model']] == candidate
        assert uris[inputs[execution.id, 'baseline_model']] == first.summary['trained_model']['uri']
