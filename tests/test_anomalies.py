"""Data that breaks the curated schema stops the run before Transform, naming the feature."""

import glob
import os

import pandas as pd
import pytest

from components.anomaly_check import AnomalyCheck, DataAnomaliesError
from conftest import run_pipeline
from pipeline.datasets import ecommerce


@pytest.fixture(scope='module')
def failed_run(tmp_path_factory, small_csv):
    data = tmp_path_factory.mktemp('bad_labels')
    frame = pd.read_csv(small_csv)
    frame.loc[7, 'click'] = 2  # a label outside {0, 1}
    frame.loc[9, 'device'] = 'smart-fridge'  # a value outside the device domain
    frame.to_csv(data / ecommerce.CSV_NAME, index=False)
    return run_pipeline(tmp_path_factory.mktemp('bad_run'), '--data', str(data))


def test_anomalies_stop_the_run_naming_feature_and_anomaly(failed_run):
    assert failed_run.returncode == 1
    assert 'error: AnomalyCheck failed: DataAnomaliesError' in failed_run.stderr
    assert "feature 'click'" in failed_run.stderr
    assert "feature 'device'" in failed_run.stderr and 'smart-fridge' in failed_run.stderr
    assert 'Transform' not in failed_run.stdout
    assert 'Traceback' not in failed_run.stderr


def test_warn_mode_reports_the_same_anomalies_and_continues(failed_run, caplog):
    anomalies_dir = glob.glob(os.path.join(failed_run.output, 'pipeline_root', 'ExampleValidator',
                                           'anomalies', '*'))[0]
    from tfx.types import standard_artifacts
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = anomalies_dir
    anomalies.split_names = '["train", "eval"]'
    with pytest.raises(DataAnomaliesError):
        AnomalyCheck.test_call(anomalies=anomalies, fail_on_anomalies=True)
    AnomalyCheck.test_call(anomalies=anomalies, fail_on_anomalies=False)
    assert "feature 'click'" in caplog.text
