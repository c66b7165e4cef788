"""AnomalyCheck on statistics of its own: a training split that cannot train the model stops the run,
whatever fail_on_anomalies says."""

import json
import os

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tfx.types import standard_artifacts

from components.anomaly_check import (
    AnomalyCheck,
    CheckedStatistics,
    TrainingDataError,
    checked_split_names,
    sample_space_problems,
    training_split_problems,
)


def _statistics(directory, train):
    """An ExampleStatistics artifact whose train split has the statistics of the frame `train`."""
    artifact = standard_artifacts.ExampleStatistics()
    artifact.uri = str(directory)
    artifact.split_names = json.dumps(['train'])
    os.makedirs(directory / 'Split-train')
    stats = tfdv.generate_statistics_from_dataframe(train)
    (directory / 'Split-train' / 'FeatureStats.pb').write_bytes(stats.SerializeToString())
    return artifact


def _no_anomalies(directory):
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(directory)
    os.makedirs(directory)
    return artifact


def _checked(directory):
    artifact = CheckedStatistics()
    artifact.uri = str(directory)
    return artifact


def test_a_binary_label_with_one_class_is_named(tmp_path):
    statistics = _statistics(tmp_path / 'stats', pd.DataFrame(
        {'click': [0, 1, 0, 1], 'purchase': [0, 0, 0, 0], 'minutes': [3.0, 3.0, 3.0, 3.0]}))
    assert training_split_problems(statistics, ['click', 'purchase']) == [
        "train: label 'purchase' is 0 in all 4 rows: a binary task needs both classes"]
    with pytest.raises(TrainingDataError, match="label 'purchase' is 0 in all 4 rows"):
        AnomalyCheck.test_call(anomalies=_no_anomalies(tmp_path / 'anomalies'),
                               checked_statistics=_checked(tmp_path / 'checked'),
                               statistics=statistics, fail_on_anomalies=False,
                               binary_labels=json.dumps(['click', 'purchase']))
    assert not (tmp_path / 'checked').exists()


def test_a_training_split_with_both_classes_passes(tmp_path):
    statistics = _statistics(tmp_path / 'stats', pd.DataFrame({'click': [0, 1], 'purchase': [1, 0]}))
    assert training_split_problems(statistics, ['click', 'purchase']) == []
    checked = _checked(tmp_path / 'checked')
    AnomalyCheck.test_call(anomalies=_no_anomalies(tmp_path / 'anomalies'),
                           checked_statistics=checked, statistics=statistics,
                           binary_labels=json.dumps(['click', 'purchase']))
    # Data that passed becomes the next run's drift baseline: the same statistics.
    assert checked_split_names(checked) == ['train']
    assert ((tmp_path / 'checked' / 'Split-train' / 'FeatureStats.pb').read_bytes()
            == (tmp_path / 'stats' / 'Split-train' / 'FeatureStats.pb').read_bytes())


def test_a_training_split_without_rows_is_named(tmp_path):
    statistics = _statistics(tmp_path / 'stats', pd.DataFrame({'click': pd.Series([], dtype='int64')}))
    assert training_split_problems(statistics, ['click']) == ['train: no rows']


def test_a_sample_space_without_rows_in_a_split_is_named(tmp_path):
    """A CVR task on the clicked rows cannot be judged on an eval split without a click."""
    statistics = _statistics(tmp_path / 'stats', pd.DataFrame({'click': [0, 1], 'buy': [0, 1]}))
    os.makedirs(tmp_path / 'stats' / 'Split-eval')
    (tmp_path / 'stats' / 'Split-eval' / 'FeatureStats.pb').write_bytes(
        tfdv.generate_statistics_from_dataframe(pd.DataFrame(
            {'click': [0, 0, 0], 'buy': [0, 0, 0]})).SerializeToString())
    assert sample_space_problems(statistics, {'cvr': 'click'}) == [
        "eval: no row where 'click' is 1: task 'cvr', trained and judged on those rows (its "
        "`given`), has none"]
    with pytest.raises(TrainingDataError, match="eval: no row where 'click' is 1"):
        AnomalyCheck.test_call(anomalies=_no_anomalies(tmp_path / 'anomalies'),
                               checked_statistics=_checked(tmp_path / 'checked'),
                               statistics=statistics, sample_spaces=json.dumps({'cvr': 'click'}))
