"""Expert collapse and gate use (trainer_module.expert_use), on tiny inputs, and how the
dashboard's overview shows them."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer_module.expert_use import collapse_warnings, expert_use_report, gate_use
from trainer_module.feature_column import DenseFeat, SparseFeat
from trainer_module.models import MMOE


def test_gate_use_entropy_and_top_expert():
    uses = gate_use({'even': [0.25] * 4, 'one': [0.02, 0.95, 0.02, 0.01]})
    assert uses['even']['entropy'] == pytest.approx(math.log(4), abs=1e-6)
    assert uses['even']['max_entropy'] == pytest.approx(math.log(4), abs=1e-6)
    assert uses['one']['top_expert'] == 1 and uses['one']['top_share'] == 0.95
    assert uses['one']['entropy'] < 0.3


def test_warnings_name_the_gate_and_the_experts():
    uses = gate_use({'ctr': [0.5, 0.3, 0.2], 'ctcvr': [0.01, 0.04, 0.95]})
    similarity = [[1.0, 0.995, 0.2], [0.995, 1.0, 0.3], [0.2, 0.3, 1.0]]
    assert collapse_warnings(uses, similarity) == [
        "gate 'ctcvr' puts 0.95 of its weight on expert 2 (more than 0.9): the task uses one "
        'expert',
        'experts 0 and 1 are near-identical: their outputs have a cosine similarity of 0.995 '
        '(above 0.99)']
    assert collapse_warnings(gate_use({'ctr': [0.5, 0.5]}), [[1.0, 0.5], [0.5, 1.0]]) == []


def test_experts_from_the_same_weights_are_identical_until_they_differ():
    model = MMOE([SparseFeat('a', 10, 4), DenseFeat('x', 2)], num_experts=3,
                 expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=())
    rng = np.random.default_rng(0)
    dataset = tf.data.Dataset.from_tensor_slices((
        {'a': rng.integers(0, 10, (64, 1)).astype('int32'),
         'x': rng.normal(size=(64, 2)).astype('float32')},
        np.zeros(64, 'float32'))).batch(16)
    means = {'ctr': [0.4, 0.3, 0.3], 'ctcvr': [0.3, 0.3, 0.4]}
    # Every expert starts from the same seeded weights, as in DeepCTR.
    report = expert_use_report(model, dataset, means)
    assert np.allclose(report['expert_similarity'], 1.0, atol=1e-5)
    assert len(report['warnings']) == 3  # every pair of the three experts
    expert = model.get_layer('experts').experts[2]
    expert.kernels[0].assign(rng.normal(size=expert.kernels[0].shape))
    report = expert_use_report(model, dataset, means)
    similarity = np.array(report['expert_similarity'])
    assert similarity[0, 1] == pytest.approx(1.0, abs=1e-5) and similarity[0, 2] < 0.9
    assert np.allclose(similarity, similarity.T) and np.allclose(np.diag(similarity), 1.0)
    assert report['warnings'] == [
        'experts 0 and 1 are near-identical: their outputs have a cosine similarity of 1.000 '
        '(above 0.99)']


def test_run_summary_and_dashboard_overview_show_expert_use(tmp_path):
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel

    from components import dashboard  # pylint: disable=import-outside-toplevel
    from pipeline.run_report import _model_report  # pylint: disable=import-outside-toplevel
    from trainer_module.gate_report import write_gate_report
    from trainer_module.settings import GATE_REPORT_DIR, PROVENANCE_FILE

    model_uri = str(tmp_path / 'model')
    means = {'ctr': [0.5, 0.3, 0.2], 'ctcvr': [0.01, 0.04, 0.95]}
    uses = gate_use(means)
    similarity = [[1.0, 0.995, 0.2], [0.995, 1.0, 0.3], [0.2, 0.3, 1.0]]
    report = {'examples': 400, 'gates': means, 'gate_use': uses, 'expert_similarity': similarity,
              'warnings': collapse_warnings(uses, similarity)}
    write_gate_report(report, f'{model_uri}/{GATE_REPORT_DIR}')
    provenance = tmp_path / 'model' / path_utils.serving_model_path(model_uri)[
        len(model_uri) + 1:] / PROVENANCE_FILE
    provenance.parent.mkdir(parents=True)
    provenance.write_text('{"task_log_variance": {"ctr": -0.5, "ctcvr": 0.25}}')

    summary = _model_report(model_uri)
    assert summary['task_log_variance'] == {'ctr': -0.5, 'ctcvr': 0.25}
    assert summary['warnings'] == report['warnings'] and len(summary['warnings']) == 2
    assert summary['gate_use']['ctcvr']['top_expert'] == 2

    page = dashboard.render_index({}, {}, f'{model_uri}/{GATE_REPORT_DIR}', model_uri, True, '1')
    for warning in report['warnings']:
        assert warning.replace("'", '&#x27;') in page
    assert 'id="gate-use"' in page and 'id="expert-similarity"' in page
    assert '<td class="fail">0.950</td>' in page and '<td class="fail">0.995</td>' in page
