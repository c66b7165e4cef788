"""Data that breaks the curated schema, or moved away from the previous data, stops the run before
Transform with a message naming each feature and what is wrong."""

import glob
import os

import pandas as pd
import pytest

from components.anomaly_check import AnomalyCheck, CheckedStatistics, DataAnomaliesError
from pipeline.datasets import ecommerce
from pipeline.run_report import sqlite_store

from helpers import MULTI_PROCESSING, SPLIT_DATA, fork_output, run_pipeline

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module')
def failed_run(tmp_path_factory, small_csv):
    data = tmp_path_factory.mktemp('bad_labels')
    frame = pd.read_csv(small_csv)
    frame.loc[7, 'click'] = 2  # a label outside {0, 1}
    frame.loc[9, 'device'] = 'smart-fridge'  # a value outside the device domain
    frame['purchase'] = frame['purchase'].astype('Int64')
    frame.loc[3:5, 'purchase'] = pd.NA  # a label missing on some rows
    frame = frame.drop(columns=['user_age'])  # a column the schema needs
    frame['coupon'] = 'none'  # a column the schema does not know
    frame.to_csv(data / ecommerce.CSV_NAME, index=False)
    # ExampleGen and StatisticsGen on Beam's multi-processing DirectRunner with 2 workers.
    return run_pipeline(tmp_path_factory.mktemp('bad_run'), '--data', str(data), *MULTI_PROCESSING)


def test_anomalies_stop_the_run_naming_feature_and_anomaly(failed_run):
    assert failed_run.returncode == 1
    assert 'error: AnomalyCheck failed: DataAnomaliesError' in failed_run.stderr
    assert "feature 'click'" in failed_run.stderr
    assert "feature 'device'" in failed_run.stderr and 'smart-fridge' in failed_run.stderr
    assert "feature 'purchase': The feature was present in fewer examples" in failed_run.stderr
    assert "feature 'user_age': Column is completely missing" in failed_run.stderr
    assert "feature 'coupon': New column (column in data but not in schema)" in failed_run.stderr
    assert 'Transform' not in failed_run.states()
    assert 'Traceback' not in failed_run.stderr


def test_beam_steps_ran_on_the_multi_processing_direct_runner(failed_run):
    states = failed_run.states()
    assert states['CsvExampleGen'] == states['StatisticsGen'] == 'COMPLETE', states
    # Beam's worker processes report through the job service into the run's log.
    logs = ''
    for path in glob.glob(os.path.join(failed_run.output, 'logs', '*.log')):
        with open(path) as f:
            logs += f.read()
    assert 'local_job_service: Worker' in logs


def test_warn_mode_reports_the_same_anomalies_and_continues(failed_run, caplog, tmp_path):
    anomalies_dir = glob.glob(os.path.join(failed_run.output, 'pipeline_root', 'ExampleValidator',
                                           'anomalies', '*'))[0]
    from tfx.types import standard_artifacts
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = anomalies_dir
    anomalies.split_names = '["train", "eval"]'
    checked = CheckedStatistics()
    checked.uri = str(tmp_path / 'checked')
    with pytest.raises(DataAnomaliesError):
        AnomalyCheck.test_call(anomalies=anomalies, checked_statistics=checked,
                               fail_on_anomalies=True)
    AnomalyCheck.test_call(anomalies=anomalies, checked_statistics=checked,
                           fail_on_anomalies=False)
    assert "feature 'click'" in caplog.text


def test_drift_from_the_previous_data_stops_the_run(tmp_path, small_data, default_runs):
    """The default runs read small_data; a new span where most users moved to PCs and prices tripled
    breaks the default drift bounds (L-infinity 0.1 on device, Jensen-Shannon 0.1 on price)."""
    first, _ = default_runs
    data = tmp_path / 'drifted'
    for split in ('train', 'eval'):
        frame = pd.read_csv(os.path.join(small_data, split, ecommerce.CSV_NAME))
        frame.loc[frame.index % 4 != 0, 'device'] = 'pc'
        frame['price'] *= 3
        os.makedirs(data / split)
        frame.to_csv(data / split / ecommerce.CSV_NAME, index=False)
    output = fork_output(first, tmp_path / 'out')
    # Run twice: refused data is no baseline, so the same data is refused again (issue 27).
    for run in [run_pipeline(output, '--data', str(data), *SPLIT_DATA) for _ in range(2)]:
        assert run.returncode == 1
        assert "error: AnomalyCheck failed: DataAnomaliesError: The data drifted" in run.stderr
        assert "train_train: feature 'device': The Linfty distance" in run.stderr
        assert "eval_eval: feature 'price': The approximate Jensen-Shannon divergence" in run.stderr
        assert 'Transform' not in run.states()
    # The refused runs published no statistics of their own as a baseline, and the last one
    # compared with the newest statistics of the default runs, whose data passed every check.
    checked = sqlite_store(os.path.join(first.output, 'metadata.sqlite')).get_artifacts_by_type(
        CheckedStatistics.TYPE_NAME)
    store = sqlite_store(os.path.join(output, 'metadata.sqlite'))
    assert [a.id for a in store.get_artifacts_by_type(CheckedStatistics.TYPE_NAME)] == [
        a.id for a in checked]
    last = max(store.get_executions_by_type('components.drift_validator.DriftValidator'),
               key=lambda execution: execution.id)
    assert [event.artifact_id for event in store.get_events_by_execution_ids([last.id])
            if event.type == event.INPUT and event.path.steps[0].key == 'baseline_statistics'
            ] == [max(a.id for a in checked)]
