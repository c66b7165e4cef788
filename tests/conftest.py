"""Shared fixtures: real pipeline runs on small data, one per session, used by many tests. What
tests share besides fixtures is in helpers.py.

Tests marked `e2e` run the pipeline (`make test-fast` leaves them out). Under pytest-xdist
(`make test` runs two workers) each module is a group of its own, so that a module's fixtures run
once, except that every test that needs the default runs goes to one group: those runs are made
once.
"""

import os

import pytest

from pipeline.datasets import ecommerce

from helpers import SMALL_TRAINING, SPLIT_DATA, run_pipeline

SMALL_ROWS = 2000
SMALL_EVAL_ROWS = 400
# What only the Evaluators, the gate and the drift check read: ctr gated on its group AUC with an
# unreachable floor, another slice, another drift bound.
GATE_SLICE_AND_DRIFT_CHANGE = [
    '--set', 'tasks=[{name: ctr, label: click, gate: {metric: gauc, min: 0.99}}, '
             '{name: ctcvr, label: purchase}]',
    '--set', 'slice_features=[device, user_gender]',
    '--set', 'drift=[{feature: device, infinity_norm: 0.2}]']
DEFAULT_RUNS_GROUP = 'default_runs'


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        group = (DEFAULT_RUNS_GROUP if 'default_runs' in item.fixturenames
                 else item.module.__name__)
        item.add_marker(pytest.mark.xdist_group(group))


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
