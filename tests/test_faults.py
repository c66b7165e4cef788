"""Faults: a run killed during training, then run again; a candidate refused per task.

One candidate run (after the default run pushed a good model, in a copy of its metadata store)
carries several faults at once: a few malformed CSV rows (set aside with `bad_rows: skip`), ctr labels
shuffled in training (so ctr gets worse than the serving model), and no purchase in the eval split
(so ctcvr cannot be judged). It is killed during the Trainer, then run again to completion.
"""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from ml_metadata.proto import metadata_store_pb2

from conftest import PROJECT_DIR, SMALL_TRAINING, SPLIT_DATA, fork_output, run_pipeline
from pipeline.datasets import ecommerce
from pipeline.run_report import sqlite_store
from test_csv_example_gen import BAD
from test_dashboard import overall_row

pytestmark = pytest.mark.e2e

_STATE = metadata_store_pb2.Execution.State


def _kill_during_training(output, args):
    """Starts local_runner.py and kills it, Beam workers and all, at its first training step."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), '--output', output, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT_DIR,
        start_new_session=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if 'Trainer step' in line:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, ''.join(seen)
    return ''.join(seen)


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
    _, run = faulty_candidate
    store = sqlite_store(run.summary['paths']['metadata'])
    executions = {e.id: e for e in store.get_executions()}
    producer = {event.artifact_id: event.execution_id
                for event in store.get_events_by_execution_ids(list(executions))
                if event.type == metadata_store_pb2.Event.OUTPUT}
    finished = (_STATE.COMPLETE, _STATE.CACHED)
    # The killed Trainer's execution never finished; TFX publishes outputs only when one does.
    killed = [e for e in store.get_executions_by_type('tfx.components.trainer.component.Trainer')
              if e.last_known_state not in finished]
    assert killed
    for artifact in store.get_artifacts():
        if artifact.state == metadata_store_pb2.Artifact.LIVE:
            assert executions[producer[artifact.id]].last_known_state in finished, artifact


def test_bad_rows_are_set_aside_and_counted_in_the_summary(faulty_candidate):
    _, run = faulty_candidate
    assert run.summary['bad_rows']['count'] == 5
    assert os.listdir(run.summary['bad_rows']['listed_in'])
    assert 'bad CSV rows:   5 set aside' in run.stdout


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
    assert f'95% interval [{lower:+.4f}, {upper:+.4f}]' in run.stdout
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

