"""Faults: a run killed during training, then run again; one killed in Transform, then in the
Pusher's copy, then run again; a candidate refused per task.

One candidate run (after the default run pushed a good model, in a copy of its metadata store)
carries several faults at once: a few malformed CSV rows (set aside with `bad_rows: skip`), ctr labels
shuffled in training (so ctr gets worse than the serving model), and no purchase in the eval split
(so ctcvr cannot be judged). It is killed during the Trainer, then run again to completion.
"""

import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from ml_metadata.proto import metadata_store_pb2

from components import atomic_pusher
from components.blessing_gate import describe
from pipeline.datasets import ecommerce
from pipeline.run_report import sqlite_store

from helpers import (
    BAD,
    SMALL_TRAINING,
    SPLIT_DATA,
    fork_output,
    kill_when,
    overall_row,
    run_pipeline,
)

pytestmark = pytest.mark.e2e

_STATE = metadata_store_pb2.Execution.State


def _kill_during_training(output, args):
    return kill_when(output, args, lambda line: 'Trainer step' in line)


def _started(output, component):
    """Whether `component`'s execution has started: TFX makes its output directories once it has
    registered the execution in ML Metadata, before the executor runs. (Polling the store itself
    could lock the SQLite file under the running pipeline.)"""
    return os.path.isdir(os.path.join(output, 'pipeline_root', component))


def _serving_versions(output):
    serving = os.path.join(output, 'serving_model')
    return sorted(os.listdir(serving)) if os.path.isdir(serving) else []


@pytest.fixture(scope='module')
def faulty_candidate(tmp_path_factory, small_data, default_runs):
    """(output of the killed run, the run that completed after it)."""
    first, _ = default_runs
    data = tmp_path_factory.mktemp('faulty_data')
    train = pd.read_csv(os.path.join(small_data, 'train', ecommerce.CSV_NAME))
    train['click'] = np.random.default_rng(0).permutation(train['click'].to_numpy())
    os.makedirs(data / 'train')
    train.to_csv(data / 'train' / ecommerce.CSV_NAME, index=False)
    with open(data / 'train' / ecommerce.CSV_NAME, 'a') as f:
        f.write(BAD)
    evaluation = pd.read_csv(os.path.join(small_data, 'eval', ecommerce.CSV_NAME))
    evaluation['purchase'] = 0
    os.makedirs(data / 'eval')
    evaluation.to_csv(data / 'eval' / ecommerce.CSV_NAME, index=False)

    output = fork_output(first, tmp_path_factory.mktemp('faulty_run'))
    args = ['--data', str(data), *SPLIT_DATA, *SMALL_TRAINING, '--set', 'bad_rows=skip']
    killed_stdout = _kill_during_training(output, args)
    return killed_stdout, run_pipeline(output, *args).check()


def test_rerun_after_a_kill_takes_upstream_from_the_cache(faulty_candidate):
    killed_stdout, run = faulty_candidate
    assert 'Transform done in' in killed_stdout
    states = run.states()
    for node in ('CsvExampleGen', 'StatisticsGen', 'Transform'):
        assert states[node] == 'CACHED', states
    for node in ('Trainer', 'Evaluator.ctr', 'Evaluator.ctcvr', 'BlessingGate', 'Pusher'):
        assert states[node] == 'COMPLETE', states


def test_no_live_artifact_comes_from_an_unfinished_execution(faulty_candidate):
    _assert_outputs_only_of_finished_executions(faulty_candidate[1], ['Trainer'])


def _assert_outputs_only_of_finished_executions(run, killed_components):
    """Each of `killed_components` has an execution that never finished, and every live
    artifact of the store comes from a finished execution."""
    store = sqlite_store(run.summary['paths']['metadata'])
    executions = {e.id: e for e in store.get_executions()}
    producer = {event.artifact_id: event.execution_id
                for event in store.get_events_by_execution_ids(list(executions))
                if event.type == metadata_store_pb2.Event.OUTPUT}
    finished = (_STATE.COMPLETE, _STATE.CACHED)
    # The killed executions never finished; TFX publishes outputs only when one does.
    types = {t.id: t.name for t in store.get_execution_types()}
    for component in killed_components:
        assert [e for e in executions.values() if e.last_known_state not in finished
                and types[e.type_id].endswith(f'.{component}')], component
    for artifact in store.get_artifacts():
        if artifact.state == metadata_store_pb2.Artifact.LIVE:
            assert executions[producer[artifact.id]].last_known_state in finished, artifact


def test_bad_rows_are_set_aside_and_counted_in_the_summary(faulty_candidate):
    _, run = faulty_candidate
    assert run.summary['bad_rows']['count'] == 5
    assert os.listdir(run.summary['bad_rows']['listed_in'])


def test_an_eval_split_without_positives_is_refused_with_its_reason(faulty_candidate):
    _, run = faulty_candidate
    ctcvr = run.summary['tasks']['ctcvr']
    assert ctcvr['metrics']['mean_label'] == 0
    assert not ctcvr['verdict']['blessed']
    assert ctcvr['verdict']['reason'] == 'no positives in eval for ctcvr'


def test_a_task_worse_than_the_serving_model_is_refused(faulty_candidate):
    """The gate's decision for other tasks and bounds, on plain data: test_blessing_gate.py."""
    _, run = faulty_candidate
    ctr = run.summary['tasks']['ctr']
    assert not ctr['verdict']['blessed']
    failure = next(f for f in ctr['verdict']['failures']
                   if f['metric'] == 'auc' and f['is_change'] and f['slice'] == 'Overall')
    # change_test: significant: the whole paired 95% interval is below -max_decrease.
    lower, upper = failure['interval']
    print(f"ctr with shuffled labels: auc change {failure['value']:+.4f}, 95% interval "
          f"[{lower:+.4f}, {upper:+.4f}]")
    assert lower < failure['value'] < upper < -0.01
    # The reason the run's report gives (run.check(): the report is the summary's).
    assert f'95% interval [{lower:+.4f}, {upper:+.4f}]' in describe(ctr['verdict'])
    assert run.summary['pushed_model'] is None
    assert not os.path.exists(run.summary['paths']['serving']) or not os.listdir(
        run.summary['paths']['serving'])


def test_refused_task_page_shows_the_failing_metric_in_red(faulty_candidate):
    _, run = faulty_candidate
    with open(os.path.join(os.path.dirname(run.summary['dashboard']), 'ctr.html')) as f:
        text = f.read()
    assert 'class="verdict refused"' in text and 'auc change' in text
    assert re.search(r'<td class="fail">-0\.\d{4}</td>', overall_row(text, 'auc'))
    # Judged against the pushed model: the baseline's values and the differences are shown.
    assert '<th>baseline</th><th>difference</th>' in text



@pytest.fixture(scope='module')
def killed_in_transform_and_in_the_push(tmp_path_factory, small_data, default_runs):
    """After the default runs pushed a model (a copy of their store): new training rows of the same
    generator, in a run killed as Transform starts, then one killed while the Pusher copies the
    model into the serving directory, then one that completes. (serving versions before, after
    the push was killed, after the last run; the killed runs' output; the last run.)"""
    first, _ = default_runs
    data = tmp_path_factory.mktemp('next_days')
    ecommerce.write(str(data / 'train'), rows=1600, seed=13)
    os.makedirs(data / 'eval')
    shutil.copy(os.path.join(small_data, 'eval', ecommerce.CSV_NAME), data / 'eval')
    output = fork_output(first, tmp_path_factory.mktemp('killed_twice'))
    shutil.copytree(os.path.join(first.output, 'serving_model'),
                    os.path.join(output, 'serving_model'))
    before = _serving_versions(output)
    args = ['--data', str(data), *SPLIT_DATA, *SMALL_TRAINING]
    killed = kill_when(output, args, lambda line: line.rstrip().endswith('] Transform ...'),
                        when=lambda: _started(output, 'Transform'))
    assert _serving_versions(output) == before
    staging = lambda: any(name.startswith(atomic_pusher.STAGING_PREFIX)  # noqa: E731
                          for name in _serving_versions(output))
    killed += kill_when(output, args, lambda line: line.rstrip().endswith('] Pusher ...'),
                         when=staging)
    after_kill = _serving_versions(output)
    return before, after_kill, killed, run_pipeline(output, *args).check()


def test_a_run_killed_in_transform_and_in_the_push_ends_with_one_new_version(
        killed_in_transform_and_in_the_push):
    before, after_kill, killed, run = killed_in_transform_and_in_the_push
    assert 'Trainer done in' in killed  # the second run got as far as the push
    # Killed while copying: its staging directory is left, hidden from model servers, and no
    # version directory was added.
    assert [name for name in after_kill if name.isdigit()] == before
    assert any(name.startswith(atomic_pusher.STAGING_PREFIX) for name in after_kill), after_kill
    # The run after it pushed exactly one new, complete version, and removed the staging.
    after = _serving_versions(run.output)
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and new[0].isdigit() and int(new[0]) > max(map(int, before)), after
    assert run.summary['pushed_model'] == os.path.join(run.output, 'serving_model', new[0])
    assert os.path.exists(os.path.join(run.output, 'serving_model', new[0], 'saved_model.pb'))
    states = run.states()
    for node in ('CsvExampleGen', 'Transform', 'Trainer', 'Evaluator.ctr', 'Evaluator.ctcvr'):
        assert states[node] == 'CACHED', states
    assert states['Pusher'] == 'COMPLETE', states


def test_no_live_artifact_comes_from_a_killed_transform_or_push(
        killed_in_transform_and_in_the_push):
    run = killed_in_transform_and_in_the_push[-1]
    _assert_outputs_only_of_finished_executions(run, ['Transform', 'Pusher'])
