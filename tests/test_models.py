"""The MMOE model: DeepCTR's API, errors, parameter count and determinism."""

import os

import numpy as np
import pytest
import tensorflow as tf

from trainer_module.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat
from trainer_module.layers import SparseEmbeddings
from trainer_module.models import (
    ESMM,
    MMOE,
    PLE,
    SHARED_GATE,
    OMoE,
    SharedBottom,
    gate_weights_model,
    mixtures,
)

COLUMNS = [SparseFeat('a', vocabulary_size=10, embedding_dim=4),
           SparseFeat('b', vocabulary_size=5, embedding_dim=4), DenseFeat('x')]
SMALL = dict(expert_dnn_hidden_units=(8, 4), tower_dnn_hidden_units=(2,))


def _inputs(rows=16, seed=0):
    rng = np.random.default_rng(seed)
    return {'a': rng.integers(0, 10, (rows, 1)), 'b': rng.integers(0, 5, (rows, 1)),
            'x': rng.normal(size=(rows, 1)).astype('float32')}


def test_parameter_count_follows_deepctr_wiring():
    model = MMOE(COLUMNS, **SMALL)
    embeddings = 10 * 4 + 5 * 4
    experts = 3 * ((9 * 8 + 8) + (8 * 4 + 4))  # input: 2 embeddings of 4 + 1 dense value
    gates = 2 * (9 * 3)  # bias-free softmax over 3 experts, per task
    towers = 2 * (4 * 2 + 2)
    logits_and_biases = 2 * 2 + 2 * 1
    assert model.count_params() == embeddings + experts + gates + towers + logits_and_biases


def test_outputs_are_named_after_tasks_and_typed():
    model = MMOE(COLUMNS, **SMALL, task_types=('binary', 'regression'),
                 task_names=('click', 'minutes'))
    assert model.output_names == ['click', 'minutes']
    click, minutes = model.predict(_inputs(), verbose=0)
    assert np.all((click > 0) & (click < 1))
    assert click.shape == minutes.shape == (16, 1)


@pytest.mark.parametrize('kwargs, message', [
    (dict(task_types=('binary',), task_names=('ctr',)), 'num_tasks must be greater than 1'),
    (dict(num_experts=1), 'num_experts must be greater than 1'),
    (dict(task_types=('binary',)), 'num_tasks must be equal to the length of task_types'),
    (dict(task_types=('binary', 'ranking')), 'task must be binary or regression, ranking is illegal'),
])
def test_deepctr_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MMOE(COLUMNS, **kwargs)


def test_same_seed_gives_same_initial_weights_and_predictions():
    first, second = MMOE(COLUMNS, **SMALL, seed=7), MMOE(COLUMNS, **SMALL, seed=7)
    for w1, w2 in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(first.predict(_inputs(), verbose=0),
                                  second.predict(_inputs(), verbose=0))
    other = MMOE(COLUMNS, **SMALL, seed=8)
    assert any(not np.array_equal(w1, w2)
               for w1, w2 in zip(first.get_weights(), other.get_weights()))


def test_gates_are_distributions_over_experts():
    model = MMOE(COLUMNS, **SMALL, num_experts=4)
    gates = gate_weights_model(model).predict(_inputs(), verbose=0)
    assert set(gates) == {'ctr', 'ctcvr'}
    for weights in gates.values():
        assert weights.shape == (16, 4)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_omoe_has_one_shared_gate():
    model = OMoE(COLUMNS, **SMALL)
    assert set(gate_weights_model(model).predict(_inputs(), verbose=0)) == {'shared'}
    mmoe = MMOE(COLUMNS, **SMALL)
    assert mmoe.count_params() - model.count_params() == 9 * 3  # one gate fewer


def test_shared_bottom_parameter_count():
    model = SharedBottom(COLUMNS, bottom_dnn_hidden_units=(8, 4), tower_dnn_hidden_units=(2,))
    embeddings = 10 * 4 + 5 * 4
    bottom = (9 * 8 + 8) + (8 * 4 + 4)
    towers = 2 * (4 * 2 + 2)
    assert model.count_params() == embeddings + bottom + towers + 2 * 2 + 2 * 1
    with pytest.raises(ValueError, match='has no gates'):
        gate_weights_model(model)


def test_ple_gates_weigh_their_task_s_experts_and_the_shared_ones():
    model = PLE(COLUMNS, specific_expert_num=2, shared_expert_num=3, **SMALL)
    gates = gate_weights_model(model).predict(_inputs(), verbose=0)
    # Below the last level a shared gate weighs every expert of its level.
    assert {name: weights.shape for name, weights in gates.items()} == {
        'level_0_ctr': (16, 5), 'level_0_ctcvr': (16, 5), 'level_0_shared': (16, 7),
        'level_1_ctr': (16, 5), 'level_1_ctcvr': (16, 5)}
    for weights in gates.values():
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)
    one_level = PLE(COLUMNS, num_levels=1, **SMALL)
    assert [mixture.gate for mixture in mixtures(one_level)] == ['level_0_ctr', 'level_0_ctcvr']


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_levels=0), 'num_levels must be at least 1'),
    (dict(specific_expert_num=-1), 'specific_expert_num and shared_expert_num must be 0 or more'),
    (dict(specific_expert_num=0, shared_expert_num=0), 'PLE needs at least one expert per task'),
])
def test_ple_refuses_what_deepctr_builds_nothing_usable_of(kwargs, message):
    """DeepCTR's PLE gives a model without outputs for no level, fails in a Lambda for no expert."""
    with pytest.raises(ValueError, match=message):
        PLE(COLUMNS, **kwargs)


def test_ple_without_specific_or_shared_experts_builds_as_deepctrs():
    """DeepCTR builds both; the config asks at least one of each (architectures.py)."""
    assert [m.expert_names for m in mixtures(PLE(COLUMNS, num_levels=1, specific_expert_num=0,
                                                 **SMALL))] == [
        ('level_0_expert_shared_0',), ('level_0_expert_shared_0',)]
    assert [m.expert_names for m in mixtures(PLE(COLUMNS, num_levels=1, shared_expert_num=0,
                                                 **SMALL))] == [
        ('level_0_task_ctr_expert_specific_0',), ('level_0_task_ctcvr_expert_specific_0',)]


def test_save_reload_gives_identical_predictions(tmp_path):
    model = MMOE(COLUMNS, **SMALL, task_types=('binary', 'regression'))
    model.save(str(tmp_path / 'model'), save_format='tf')
    reloaded = tf.saved_model.load(str(tmp_path / 'model'))
    inputs = {name: tf.constant(values, dtype=tf.float32 if name == 'x' else tf.int32)
              for name, values in _inputs().items()}
    served = reloaded.signatures['serving_default'](**inputs)
    for name, expected in zip(model.output_names, model(inputs, training=False)):
        np.testing.assert_allclose(expected.numpy(), served[name].numpy(), rtol=1e-6, atol=1e-6)


def test_regression_output_is_unbounded():
    model = MMOE(COLUMNS, **SMALL, task_types=('binary', 'regression'),
                 task_names=('click', 'minutes'))
    for name, bias in (('click', 50.0), ('minutes', 50.0)):
        model.get_layer(name).global_bias.assign([bias])
    click, minutes = model.predict(_inputs(), verbose=0)
    assert np.all(click <= 1.0)
    assert np.all(minutes > 40.0)


def test_trainer_weighs_each_task_loss_by_its_config_weight():
    from pipeline.config import PipelineConfig
    from trainer_module.build import build_model
    config = PipelineConfig().with_overrides([
        'tasks=[{name: ctr, label: click, loss_weight: 2.0}, '
        '{name: ctcvr, label: purchase, loss_weight: 0.25}]',
        'model.l2_reg_embedding=0',
        f'model.expert_dnn_hidden_units={list(SMALL["expert_dnn_hidden_units"])}',
        f'model.tower_dnn_hidden_units={list(SMALL["tower_dnn_hidden_units"])}'])
    model = build_model(config.trainer_settings(), COLUMNS)
    rng = np.random.default_rng(1)
    labels = {'ctr': rng.integers(0, 2, (16, 1)).astype('float32'),
              'ctcvr': rng.integers(0, 2, (16, 1)).astype('float32')}
    result = model.evaluate(_inputs(), labels, batch_size=16, verbose=0, return_dict=True)
    assert result['loss'] == pytest.approx(2.0 * result['ctr_loss'] + 0.25 * result['ctcvr_loss'],
                                           rel=1e-5)
    assert {'ctr_auc', 'ctcvr_auc'} <= set(result)


def _named_layers(model):
    """The names of the layers the model functions name: experts, gates, towers, logits."""
    return sorted(layer.name for layer in model.layers
                  if any(part in layer.name for part in ('expert', 'gate', 'tower', 'logit')))


@pytest.mark.parametrize('architecture, overrides, build', [
    ('mmoe', [], lambda: MMOE(COLUMNS, **SMALL)), ('omoe', [], lambda: OMoE(COLUMNS, **SMALL)),
    ('shared_bottom', [], lambda: SharedBottom(
        COLUMNS, bottom_dnn_hidden_units=SMALL['expert_dnn_hidden_units'],
        tower_dnn_hidden_units=SMALL['tower_dnn_hidden_units'])),
    ('ple', ['model.num_levels=3', 'model.specific_expert_num=2', 'model.shared_expert_num=3',
             'model.gate_dnn_hidden_units=[4]'],
     lambda: PLE(COLUMNS, num_levels=3, specific_expert_num=2, shared_expert_num=3,
                 gate_dnn_hidden_units=(4,), **SMALL)),
    ('esmm', [], lambda: ESMM(COLUMNS, tower_dnn_hidden_units=SMALL['tower_dnn_hidden_units']))])
def test_trainer_builds_the_architecture_of_its_config(architecture, overrides, build):
    """MMoE, one of the paper's baselines (a Shared-Bottom's bottom is the experts' DNN), PLE
    with its own arguments, or ESMM (towers only), with the config's arguments."""
    from pipeline.config import PipelineConfig
    from trainer_module.build import build_model
    widths = [f'model.tower_dnn_hidden_units={list(SMALL["tower_dnn_hidden_units"])}']
    if architecture != 'esmm':
        widths.append(f'model.expert_dnn_hidden_units={list(SMALL["expert_dnn_hidden_units"])}')
    config = PipelineConfig().with_overrides(
        [f'model.architecture={architecture}', *widths, *overrides])
    model, expected = build_model(config.trainer_settings(), COLUMNS), build()
    assert model.count_params() == expected.count_params()
    assert model.output_names == expected.output_names == list(config.task_names)
    assert _named_layers(model) == _named_layers(expected)
    assert [mixture.gate for mixture in mixtures(model)] == [
        mixture.gate for mixture in mixtures(expected)]


def test_training_batches_draw_every_row_once_a_pass_in_a_new_order():
    from trainer_module.data import shuffled_batches
    rows = {'id': tf.range(10)}
    batches = [b['id'].numpy() for b in shuffled_batches(rows, 10, 5, seed=7).take(4)]
    first_pass, second_pass = np.concatenate(batches[:2]), np.concatenate(batches[2:])
    assert sorted(first_pass) == sorted(second_pass) == list(range(10))
    assert list(first_pass) != list(second_pass)
    again = [b['id'].numpy() for b in shuffled_batches(rows, 10, 5, seed=7).take(4)]
    assert np.array_equal(np.concatenate(again), np.concatenate(batches))
    # Fewer rows than a batch: every batch is full, each row drawn as evenly as it can be.
    small = next(iter(shuffled_batches({'id': tf.range(3)}, 3, 7, seed=7)))['id'].numpy()
    assert len(small) == 7 and sorted(np.bincount(small)) == [2, 2, 3]


@pytest.mark.slow  # a new Python process: 6-9 s
def test_trainer_sets_threads_per_op_where_tensorflow_has_not_started():
    import subprocess
    import sys
    script = (
        'import tensorflow as tf\n'
        'from trainer_module.runtime import set_op_threads\n'
        'print(set_op_threads(1), tf.config.threading.get_intra_op_parallelism_threads())\n'
        'tf.constant(1.0) + 1.0\n'
        'print(set_op_threads(1), set_op_threads(2))\n')
    process = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert process.stdout.split() == ['True', '1', 'True', 'False']
    assert ('TensorFlow already runs in this process with 1 intra-op threads' in process.stderr
            and 'TF_NUM_INTRAOP_THREADS=2' in process.stderr)


def test_embeddings_of_mixed_dimensions_come_in_feature_order():
    # 'a' and 'c' share one table (DeepCTR's embedding_name); 'b' has another dimension.
    layer = SparseEmbeddings([('a', 10, 4, True), ('b', 5, 8, True), ('a', 10, 4, True)])
    ids = [tf.constant([[3], [9]]), tf.constant([[4], [0]]), tf.constant([[7], [3]])]
    out = layer(ids).numpy()
    dim4, dim8 = (table.numpy() for table in layer.tables)
    assert dim4.shape == (10, 4) and dim8.shape == (5, 8)
    np.testing.assert_array_equal(out, np.concatenate(
        [dim4[[3, 9]], dim8[[4, 0]], dim4[[7, 3]]], axis=1))


def test_ids_outside_the_vocabulary_are_refused():
    model = MMOE([SparseFeat('a', 10), SparseFeat('b', 5), DenseFeat('x')])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r'sparse feature ids must be in \[0, vocabulary_size\): a < 10, b < 5'):
        model({'a': np.array([[3]]), 'b': np.array([[5]]), 'x': np.array([[0.5]])})


@pytest.mark.slow  # a new Python process: 6-9 s
def test_model_side_imports_nothing_from_the_pipeline_side():
    import subprocess
    import sys
    script = ('import sys, trainer_module.run, trainer_module.preprocessing\n'
              'print(sorted({m.split(".")[0] for m in sys.modules} & {"pipeline", "components"}))')
    process = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert process.stdout.split() == ['[]']


@pytest.mark.slow  # a new Python process: 6-9 s
def test_keras_2_whatever_the_order_of_imports():
    """TensorFlow first, then any package of ours: `tf.keras` is still Keras 2 (tf_keras)."""
    import subprocess
    import sys
    script = ('import tensorflow as tf\nimport pipeline.config\nimport tf_keras\n'
              'print(tf.keras.Model is tf_keras.Model)')
    env = {k: v for k, v in os.environ.items() if k != 'TF_USE_LEGACY_KERAS'}
    process = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                             check=True, cwd=os.path.dirname(os.path.dirname(__file__)), env=env)
    assert process.stdout.split() == ['True']


class _Vocabularies:
    """What `feature_columns_from_transform` reads of a Transform output: every vocabulary of 4."""

    @staticmethod
    def vocabulary_size_by_name(name):
        return 4


# The edges of the config's lists, (architecture, sparse features, dense features, task types):
# no, one and several features of each kind, three tasks and more. One sparse and one dense feature
# together are in tests/test_transform.py.
BINARY, REGRESSION = 'binary', 'regression'
CONFIG_EDGES = {
    'no_sparse_one_dense_three_tasks': ('mmoe', [], ['price'], [BINARY, BINARY, REGRESSION]),
    'one_sparse_no_dense': ('omoe', ['device'], [], [BINARY, BINARY]),
    'many_of_each_four_tasks': ('mmoe', ['device', 'city', 'hour'],
                                ['price', 'item_rating', 'user_age'],
                                [BINARY, REGRESSION, BINARY, REGRESSION]),
}


@pytest.mark.parametrize('edge', list(CONFIG_EDGES))
def test_trainer_builds_trains_and_predicts_at_the_edges_of_the_config(edge):
    """The Trainer's columns, batches and compiled model for each edge: a few steps lower the loss
    on the rows trained on, the model predicts one output per task, and MMoE has a gate per task
    (OMoE one)."""
    from pipeline.config import PipelineConfig
    from trainer_module.build import build_model
    from trainer_module.data import model_inputs, training_batches
    from trainer_module.features import feature_columns_from_transform
    architecture, sparse, dense, task_types = CONFIG_EDGES[edge]
    tasks = [f'{{name: task{i}, label: label{i}, type: {task_type}'
             + (', gate: {max: 1.0}}' if task_type == 'regression' else '}')
             for i, task_type in enumerate(task_types)]
    config = PipelineConfig().with_overrides([
        f'sparse_features=[{", ".join(sparse)}]', f'dense_features=[{", ".join(dense)}]',
        f'tasks=[{", ".join(tasks)}]', 'slice_features=[]', 'drift=[]', 'evaluation.group_by=null',
        f'model.architecture={architecture}',
        f'model.expert_dnn_hidden_units={list(SMALL["expert_dnn_hidden_units"])}',
        f'model.tower_dnn_hidden_units={list(SMALL["tower_dnn_hidden_units"])}',
        'training.batch_size=16', 'training.learning_rate=0.01'])
    settings = config.trainer_settings()
    columns = feature_columns_from_transform(settings, _Vocabularies())
    assert [column.name for column in columns] == sparse + dense
    rows = 64
    rng = np.random.default_rng(3)
    # Transformed rows, as the Trainer reads them: [rows] ids (the OOV id included) and z-scores,
    # and labels that every feature moves (a binary label is the sign of a regression one).
    ids = {name: rng.integers(0, 5, rows) for name in sparse}
    values = {name: rng.normal(size=rows) for name in dense}
    signal = sum(ids[name] % 2 - 0.5 for name in sparse) + sum(values[name] for name in dense)
    transformed = {name: tf.constant(column) for name, column in ids.items()}
    transformed.update({name: tf.constant(column, tf.float32) for name, column in values.items()})
    transformed.update({task.label: tf.constant(
        signal > 0 if task.type == BINARY else signal, tf.float32) for task in settings.tasks})
    model = build_model(settings, columns)
    inputs = model_inputs(transformed, columns)

    def loss(predictions):
        """The compiled loss on all the rows (the config's loss weights are 1)."""
        return sum(float(model.loss[task.name](tf.reshape(transformed[task.label], [-1, 1]),
                                                prediction))
                   for task, prediction in zip(settings.tasks, predictions))

    before = loss(model.predict(inputs, verbose=0))
    model.fit(training_batches(transformed, settings, columns), steps_per_epoch=50, epochs=1,
              verbose=0)
    predictions = model.predict(inputs, verbose=0)
    assert loss(predictions) < before
    assert model.output_names == list(settings.task_names)
    assert len(predictions) == len(task_types)
    for task_type, prediction in zip(task_types, predictions):
        assert prediction.shape == (rows, 1) and np.all(np.isfinite(prediction))
        if task_type == BINARY:
            assert np.all((prediction > 0) & (prediction < 1))
    gates = sorted(mixture.gate for mixture in mixtures(model))
    assert gates == sorted(settings.task_names if architecture == 'mmoe' else [SHARED_GATE])


PRECISION_COLUMNS = [
    *COLUMNS, VarLenSparseFeat(SparseFeat('hist', vocabulary_size=10, embedding_dim=4,
                                          embedding_name='a'), maxlen=3, combiner='mean',
                               length_name='hist_length'),
    VarLenSparseFeat(SparseFeat('clicked', vocabulary_size=10, embedding_dim=4,
                                embedding_name='a'), maxlen=3, combiner='attention',
                     length_name='clicked_length', query_name='a')]


# MMoE alone in `make test-fast`: the five together train for about 25 s.
@pytest.mark.parametrize('architecture', ['mmoe'] + [
    pytest.param(name, marks=pytest.mark.slow) for name in ('omoe', 'shared_bottom', 'ple', 'esmm')])
def test_mixed_bfloat16_computes_in_bfloat16_and_keeps_weights_and_predictions_float32(
        architecture):
    """`training.precision: mixed_bfloat16`: every architecture, with lists pooled by mean and by
    attention, computes in bfloat16, holds float32 weights and predicts in float32 what the same
    weights predict in float32 to bfloat16's precision; a few steps lower the loss; Keras' global
    policy is float32 again afterwards."""
    from pipeline.config import PipelineConfig
    from trainer_module.build import build_model
    rows = 64
    rng = np.random.default_rng(5)
    inputs = {**_inputs(rows), 'hist': rng.integers(0, 10, (rows, 3)),
              'hist_length': rng.integers(0, 4, (rows, 1)),
              'clicked': rng.integers(0, 10, (rows, 3)),
              'clicked_length': rng.integers(0, 4, (rows, 1))}
    labels = {'ctr': (inputs['x'] > 0).astype('float32'),
              'ctcvr': ((inputs['x'] > 0) & (inputs['a'] % 2 == 0)).astype('float32')}
    overrides = [f'model.architecture={architecture}', 'training.learning_rate=0.01',
                 f'model.tower_dnn_hidden_units={list(SMALL["tower_dnn_hidden_units"])}']
    if architecture != 'esmm':
        overrides.append(
            f'model.expert_dnn_hidden_units={list(SMALL["expert_dnn_hidden_units"])}')
    models = {precision: build_model(PipelineConfig().with_overrides(
        [*overrides, f'training.precision={precision}']).trainer_settings(), PRECISION_COLUMNS)
        for precision in ('float32', 'mixed_bfloat16')}
    assert tf.keras.mixed_precision.global_policy().name == 'float32'
    mixed = models['mixed_bfloat16']
    models['float32'].set_weights(mixed.get_weights())
    assert {variable.dtype for variable in mixed.weights} == {tf.float32}
    assert {layer.compute_dtype for layer in mixed.layers
            if isinstance(layer, tf.keras.layers.Dense)} == {'bfloat16'}
    predicted = {precision: model.predict(inputs, verbose=0)
                 for precision, model in models.items()}
    for mixed_output, float32_output in zip(predicted['mixed_bfloat16'], predicted['float32']):
        assert mixed_output.dtype == np.float32
        np.testing.assert_allclose(mixed_output, float32_output, atol=0.02)
    before = mixed.evaluate(inputs, labels, verbose=0, return_dict=True)['loss']
    mixed.fit(inputs, labels, batch_size=16, epochs=5, verbose=0)
    assert mixed.evaluate(inputs, labels, verbose=0, return_dict=True)['loss'] < before
