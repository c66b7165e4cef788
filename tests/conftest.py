"""Shared fixtures: real pipeline runs on small data, one per session, used by many tests.

Tests marked `e2e` run the pipeline (`make test-fast` leaves them out). Under pytest-xdist
(`make test` runs two workers) each module is a group of its own, so that a module's fixtures run
once, except that every test that needs the default runs goes to one group: those runs are made once.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from pipeline.config import PROJECT_DIR
from pipeline.datasets import ecommerce

SMALL_ROWS = 2000
SMALL_EVAL_ROWS = 400
# The small data comes as a train and an eval directory, so that a run can change what the
# candidate learns from while the Evaluators judge every model on the same rows.
SPLIT_DATA = ['--set', 'csv_pattern=train/*.csv', '--set', 'eval_csv_pattern=eval/*.csv']
MULTI_PROCESSING = ['--beam-arg=--direct_running_mode=multi_processing',
                    '--beam-arg=--direct_num_workers=2']
# Small data: 6 passes of 64 (150 steps), evaluated 4 times a pass; early stopping keeps the
# weights from before the model overfits.
SMALL_TRAINING = ['--epochs', '6', '--batch-size', '64',
                  '--set', 'training.log_every_steps=30']
# What only the Evaluators, the gate and the drift check read: an unreachable AUC floor for ctr,
# another slice, another drift bound.
GATE_SLICE_AND_DRIFT_CHANGE = [
    '--set', 'tasks=[{name: ctr, label: click, min_auc: 0.99}, {name: ctcvr, label: purchase}]',
    '--set', 'slice_features=[device, user_gender]',
    '--set', 'drift=[{feature: device, infinity_norm: 0.2}]']
DEFAULT_RUNS_GROUP = 'default_runs'


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        group = (DEFAULT_RUNS_GROUP if 'default_runs' in item.fixturenames
                 else item.module.__name__)
        item.add_marker(pytest.mark.xdist_group(group))


class PipelineRun:
    """One `python local_runner.py` process: its exit code, terminal output and run summary."""

    def __init__(self, output, args):
        self.output = str(output)
        self.args = list(args)
        # What the serving directory held before the run.
        serving = os.path.join(self.output, 'serving_model')
        self.serving_before = sorted(os.listdir(serving)) if os.path.isdir(serving) else []
        process = subprocess.run(
            [sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), '--output', self.output]
            + list(args), capture_output=True, text=True, cwd=PROJECT_DIR, timeout=1800)
        self.returncode = process.returncode
        self.stdout = process.stdout
        self.stderr = process.stderr
        summary_path = os.path.join(self.output, 'run_summary.json')
        self.summary = None
        if self.returncode == 0 and os.path.exists(summary_path):
            with open(summary_path) as f:
                self.summary = json.load(f)

    def check(self):
        assert self.returncode == 0, f'stdout:\n{self.stdout}\nstderr:\n{self.stderr}'
        return self

    def states(self):
        return {node: run['state'] for node, run in self.summary['nodes'].items()}


def run_pipeline(output, *args):
    return PipelineRun(output, args)


@pytest.fixture(scope='session')
def small_data(tmp_path_factory):
    """2k generated rows: train/ecommerce.csv (1600) and eval/ecommerce.csv (400)."""
    data_dir = tmp_path_factory.mktemp('small_data')
    ecommerce.write(str(data_dir / 'train'), rows=SMALL_ROWS - SMALL_EVAL_ROWS, seed=11)
    ecommerce.write(str(data_dir / 'eval'), rows=SMALL_EVAL_ROWS, seed=12)
    return str(data_dir)


@pytest.fixture(scope='session')
def small_csv(small_data):
    return os.path.join(small_data, 'train', ecommerce.CSV_NAME)


@pytest.fixture(scope='session')
def default_runs(tmp_path_factory, small_data):
    """The default pipeline on 2k generated rows; then, into the same output, a run that changes
    only gates, slices and drift bounds (GATE_SLICE_AND_DRIFT_CHANGE): (first run, second run)."""
    output = tmp_path_factory.mktemp('default_run')
    first = run_pipeline(output, '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING).check()
    second = run_pipeline(output, '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING,
                          *GATE_SLICE_AND_DRIFT_CHANGE).check()
    return first, second


def fork_output(run, directory):
    """A new output directory whose metadata store is a copy of `run`'s: a run there sees the
    earlier runs (their cache, blessed model and statistics) and changes nothing of theirs."""
    os.makedirs(directory, exist_ok=True)
    shutil.copy(os.path.join(run.output, 'metadata.sqlite'), directory)
    return str(directory)

