"""Expert collapse and gate use (trainer_module.expert_use), on tiny inputs, and how the
dashboard's overview shows them."""

import math

import numpy as np
import pytest
import tensorflow as tf

from trainer_module.expert_use import collapse_warnings, expert_use_report, gate_use
from trainer_module.feature_column import DenseFeat, SparseFeat
from trainer_module.models import ESMM, MMOE, PLE, SharedBottom


def test_gate_use_entropy_and_top_expert():
    uses = gate_use({'even': [0.25] * 4, 'one': [0.02, 0.95, 0.02, 0.01]})
    assert uses['even']['entropy'] == pytest.approx(math.log(4), abs=1e-6)
    assert uses['even']['max_entropy'] == pytest.approx(math.log(4), abs=1e-6)
    assert uses['one']['top_expert'] == 1 and uses['one']['top_share'] == 0.95
    assert uses['one']['entropy'] < 0.3


EXPERTS = ['expert_0', 'expert_1', 'expert_2']


def test_warnings_name_the_gate_and_the_experts():
    uses = gate_use({'ctr': [0.5, 0.3, 0.2], 'ctcvr': [0.01, 0.04, 0.95]})
    similarity = [[1.0, 0.995, 0.2], [0.995, 1.0, 0.3], [0.2, 0.3, 1.0]]
    assert collapse_warnings(uses, {'ctr': EXPERTS, 'ctcvr': EXPERTS}, EXPERTS, similarity) == [
        "gate 'ctcvr' puts 0.95 of its weight on expert_2 (more than 0.9): the task uses one "
        'expert',
        'expert_0 and expert_1 are near-identical: their outputs have a cosine similarity of '
        '0.995 (above 0.99)']
    assert collapse_warnings(gate_use({'ctr': [0.5, 0.5]}), {'ctr': EXPERTS[:2]}, EXPERTS[:2],
                             [[1.0, 0.5], [0.5, 1.0]]) == []


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
        'expert_0 and expert_1 are near-identical: their outputs have a cosine similarity of '
        '1.000 (above 0.99)']
    assert report['experts'] == EXPERTS and report['gate_experts'] == {'ctr': EXPERTS,
                                                                       'ctcvr': EXPERTS}


def _tiny_dataset(rng):
    return tf.data.Dataset.from_tensor_slices((
        {'a': rng.integers(0, 10, (32, 1)).astype('int32'),
         'x': rng.normal(size=(32, 2)).astype('float32')},
        np.zeros(32, 'float32'))).batch(16)


def test_ple_reports_every_level_s_gates_over_its_own_and_shared_experts(tmp_path):
    """Every level's task gates over the task's own experts and the shared ones, the shared gate
    below the last level over all of its level's; experts compared within a level only."""
    from trainer_module.gate_report import gate_report, write_gate_report
    model = PLE([SparseFeat('a', 10, 4), DenseFeat('x', 2)], specific_expert_num=2,
                expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=())
    report = gate_report(model, _tiny_dataset(np.random.default_rng(1)))
    level_0 = ['level_0_task_ctr_expert_specific_0', 'level_0_task_ctr_expert_specific_1',
               'level_0_task_ctcvr_expert_specific_0', 'level_0_task_ctcvr_expert_specific_1',
               'level_0_expert_shared_0']
    experts = report['experts']
    assert sorted(experts) == sorted(level_0 + [name.replace('level_0', 'level_1')
                                                for name in level_0])
    assert set(experts[:5]) == set(level_0)  # level by level
    assert report['gate_experts']['level_0_shared'] == level_0
    assert report['gate_experts']['level_1_ctcvr'] == [
        'level_1_task_ctcvr_expert_specific_0', 'level_1_task_ctcvr_expert_specific_1',
        'level_1_expert_shared_0']
    assert set(report['gates']) == set(report['gate_use']) == {
        'level_0_ctr', 'level_0_ctcvr', 'level_0_shared', 'level_1_ctr', 'level_1_ctcvr'}
    for gate, weights in report['gates'].items():
        assert len(weights) == len(report['gate_experts'][gate])
        assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    similarity = report['expert_similarity']
    assert similarity[0][5] is None and similarity[5][0] is None  # of two levels
    # Level 0's experts read the same embeddings from the same seeded weights; level 1's read
    # the mixtures of their task.
    assert np.allclose([row[:5] for row in similarity[:5]], 1.0, atol=1e-5)
    assert sum('near-identical' in warning for warning in report['warnings']) >= 10
    write_gate_report(report, str(tmp_path))
    assert (tmp_path / 'gates.png').stat().st_size > 1000


@pytest.mark.parametrize('build', [
    lambda columns: SharedBottom(columns, bottom_dnn_hidden_units=(8,)),
    lambda columns: ESMM(columns, tower_dnn_hidden_units=(8,))])
def test_a_model_without_gates_says_so(tmp_path, build):
    from components import dashboard  # pylint: disable=import-outside-toplevel
    from trainer_module.gate_report import NO_GATES, gate_report, write_gate_report
    from trainer_module.models import has_gates
    model = build([SparseFeat('a', 10, 4), DenseFeat('x', 2)])
    assert not has_gates(model)
    report = gate_report(model, _tiny_dataset(np.random.default_rng(2)))
    assert report == {'gates': {}, 'note': NO_GATES}
    write_gate_report(report, str(tmp_path / 'gate_report'))
    assert not (tmp_path / 'gate_report' / 'gates.png').exists()
    page = dashboard.render_index({}, {}, str(tmp_path / 'gate_report'), str(tmp_path), True, '1')
    assert 'id="no-gates"' in page and 'Not applicable: this model has no gates' in page
    assert 'id="expert-use"' not in page


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
              'experts': EXPERTS, 'gate_experts': {'ctr': EXPERTS, 'ctcvr': EXPERTS},
              'warnings': collapse_warnings(uses, {'ctr': EXPERTS, 'ctcvr': EXPERTS}, EXPERTS,
                                            similarity)}
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
