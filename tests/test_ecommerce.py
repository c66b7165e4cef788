"""The bundled-data generator: the funnel's logic, determinism and the Bayes AUC."""

import filecmp
import json
import os

import numpy as np
import pandas as pd
import pytest

from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.datasets import ecommerce


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp('generated')
    report = ecommerce.write(str(out), rows=5000, seed=3)
    return str(out), report


def test_a_purchase_only_follows_a_click(generated):
    frame = pd.read_csv(os.path.join(generated[0], ecommerce.CSV_NAME))
    assert (frame['purchase'] <= frame['click']).all()
    assert 0 < frame['purchase'].sum() < frame['click'].sum() < len(frame)


def test_the_same_seed_gives_the_same_file(generated, tmp_path):
    ecommerce.write(str(tmp_path), rows=5000, seed=3)
    assert filecmp.cmp(os.path.join(generated[0], ecommerce.CSV_NAME),
                       os.path.join(tmp_path, ecommerce.CSV_NAME), shallow=False)
    ecommerce.write(str(tmp_path / 'other'), rows=5000, seed=4)
    assert not filecmp.cmp(os.path.join(generated[0], ecommerce.CSV_NAME),
                           os.path.join(tmp_path, 'other', ecommerce.CSV_NAME), shallow=False)


def test_the_bundled_data_is_what_the_generator_writes(tmp_path):
    bundled = os.path.join(PROJECT_DIR, 'data', 'ecommerce')
    with open(os.path.join(bundled, ecommerce.BAYES_AUC_NAME)) as f:
        report = json.load(f)
    ecommerce.write(str(tmp_path), rows=report['rows'], seed=report['seed'])
    assert filecmp.cmp(os.path.join(bundled, ecommerce.CSV_NAME),
                       os.path.join(tmp_path, ecommerce.CSV_NAME), shallow=False)


def test_bayes_auc_is_reported_beside_the_data(generated):
    out, report = generated
    with open(os.path.join(out, ecommerce.BAYES_AUC_NAME)) as f:
        assert json.load(f) == report
    for task in PipelineConfig().task_names:
        auc = report['bayes_auc'][task]
        assert 0.6 < auc['expected'] < 1.0
        assert abs(auc['expected'] - auc['on_sample']) < 0.05


def test_expected_auc_of_known_scores():
    assert ecommerce.expected_auc(np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert ecommerce.expected_auc(np.full(10, 0.3)) == pytest.approx(0.5)


def test_the_csv_has_the_columns_the_default_config_reads(generated):
    frame = pd.read_csv(os.path.join(generated[0], ecommerce.CSV_NAME), nrows=5)
    config = PipelineConfig()
    expected = ([f.name for f in config.sparse_features] + [f.name for f in config.dense_features]
                + list(config.label_columns))
    assert sorted(frame.columns) == sorted(expected)
