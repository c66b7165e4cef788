"""Our MMOE and SharedBottom against DeepCTR 0.9.3 itself: parameter counts and errors.

DeepCTR runs in its own venv (`make deepctr-venv`, which `make test` builds): it imports only on
TensorFlow <= 2.10.
"""

import json
import os
import subprocess

import pytest

from deepctr_parity import ERROR_CONFIGS, MMOE_CONFIGS, SHARED_BOTTOM_CONFIGS, measure
from pipeline.config import PROJECT_DIR
from trainer_module import feature_column, models

DEEPCTR_PYTHON = os.path.join(PROJECT_DIR, '.venv-deepctr', 'bin', 'python')


@pytest.fixture(scope='module')
def deepctr(tmp_path_factory):
    assert os.path.exists(DEEPCTR_PYTHON), 'DeepCTR venv missing: run make deepctr-venv'
    out = tmp_path_factory.mktemp('deepctr') / 'measured.json'
    subprocess.run([DEEPCTR_PYTHON, os.path.join(PROJECT_DIR, 'tests', 'deepctr_parity.py'),
                    str(out)], check=True, capture_output=True, timeout=600,
                   env=dict(os.environ, CUDA_VISIBLE_DEVICES=''))
    with open(out) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def ours():
    return measure(models, feature_column)


@pytest.mark.parametrize('config', list(MMOE_CONFIGS) + list(SHARED_BOTTOM_CONFIGS))
def test_parameter_counts_equal_deepctr(config, deepctr, ours):
    assert ours[config] == deepctr[config]


@pytest.mark.parametrize('config', list(ERROR_CONFIGS))
def test_errors_equal_deepctr(config, deepctr, ours):
    assert deepctr[config]['error'] is not None
    assert ours[config] == deepctr[config]
