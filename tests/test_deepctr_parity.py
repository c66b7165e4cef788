"""Our MMOE and SharedBottom against DeepCTR 0.9.4 itself, in this process: the same parameter
counts and errors, the same function (DeepCTR's weights copied into ours give the same predictions),
and training that ends within noise of DeepCTR's."""

import numpy as np
import pytest
import tf_keras as keras

# trainer_module sets TF_USE_LEGACY_KERAS=1 before DeepCTR's import first reads `tf.keras`
# (tests/conftest.py imports it first in any case).
from trainer_module import feature_column, models
from trainer_module.deepctr_weights import copy_deepctr_weights

# isort: split
from deepctr import feature_column as deepctr_feature_column
from deepctr import models as deepctr_models

MMOE_CONFIGS = {
    'defaults': {},
    'gate_dnn_and_towers': dict(gate_dnn_hidden_units=(16, 8), tower_dnn_hidden_units=(32, 16),
                                num_experts=4),
    'bn_with_regression': dict(dnn_use_bn=True, dnn_dropout=0.2, l2_reg_dnn=1e-4,
                               task_types=('binary', 'regression'), task_names=('ctr', 'price')),
    'three_tasks': dict(task_types=('binary', 'binary', 'regression'),
                        task_names=('click', 'like', 'watch'), expert_dnn_hidden_units=(64,)),
}
SHARED_BOTTOM_CONFIGS = {
    'shared_bottom_defaults': {},
    'shared_bottom_bn_regression': dict(dnn_use_bn=True, task_types=('binary', 'regression')),
}
ERROR_CONFIGS = {
    'one_task': dict(task_types=('binary',), task_names=('ctr',)),
    'one_expert': dict(num_experts=1),
    'lengths_differ': dict(task_types=('binary',)),
    'unknown_task_type': dict(task_types=('binary', 'multiclass')),
}


def count_columns(fc):
    return ([fc.SparseFeat(f'cat_{i}', vocabulary_size=vocabulary, embedding_dim=dim)
             for i, (vocabulary, dim) in enumerate([(1000, 8), (50, 4), (7, 4), (24, 8)])]
            + [fc.DenseFeat(f'num_{i}', 1) for i in range(3)])


def _counts(model):
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {'trainable': trainable, 'total': int(model.count_params())}


def measure(module, fc):
    """{config name: {'trainable', 'total'} or {'error': message}}"""
    columns = count_columns(fc)
    result = {}
    for name, kwargs in MMOE_CONFIGS.items():
        result[name] = _counts(module.MMOE(columns, **kwargs))
    for name, kwargs in SHARED_BOTTOM_CONFIGS.items():
        result[name] = _counts(module.SharedBottom(columns, **kwargs))
    for name, kwargs in ERROR_CONFIGS.items():
        try:
            module.MMOE(columns, **kwargs)
            result[name] = {'error': None}
        except ValueError as error:
            result[name] = {'error': str(error)}
    return result


@pytest.fixture(scope='module')
def measured():
    return measure(deepctr_models, deepctr_feature_column), measure(models, feature_column)


@pytest.mark.parametrize('config', list(MMOE_CONFIGS) + list(SHARED_BOTTOM_CONFIGS))
def test_parameter_counts_equal_deepctr(config, measured):
    deepctr, ours = measured
    assert ours[config] == deepctr[config]


@pytest.mark.parametrize('config', list(ERROR_CONFIGS))
def test_errors_equal_deepctr(config, measured):
    deepctr, ours = measured
    assert deepctr[config]['error'] is not None
    assert ours[config] == deepctr[config]


def test_feature_columns_take_deepctrs_positional_arguments():
    args = ('user', 100, 8, False, None, 'int64', None, 'user_table', 'users', False)
    assert feature_column.SparseFeat(*args)._asdict() == {
        field: value for field, value in deepctr_feature_column.SparseFeat(*args)._asdict().items()
        if field != 'embeddings_initializer'} | {'embeddings_initializer': None}
    assert (tuple(feature_column.DenseFeat('price', 3, 'float64'))
            == tuple(deepctr_feature_column.DenseFeat('price', 3, 'float64')))
    columns = count_columns(feature_column)
    assert (feature_column.get_feature_names(columns)
            == deepctr_feature_column.get_feature_names(count_columns(deepctr_feature_column)))


# Feature columns of the weight-copy checks: embeddings of two dimensions interleaved, two
# embedding groups (DeepCTR orders the DNN input by group), a table two features share, and dense
# inputs of dimension 1 and 3.
def copy_columns(fc):
    return [fc.SparseFeat('cat_0', 1000, 8), fc.SparseFeat('cat_1', 50, 4, group_name='item'),
            fc.SparseFeat('cat_2', 7, 4), fc.SparseFeat('cat_3', 24, 8, group_name='item'),
            fc.SparseFeat('cat_4', 7, 4, embedding_name='cat_2'),
            fc.DenseFeat('num_0'), fc.DenseFeat('num_1', 3)]


COPY_CONFIGS = {
    'mmoe_defaults': ('MMOE', {}),
    'mmoe_no_towers_regression': ('MMOE', dict(tower_dnn_hidden_units=(),
                                               task_types=('regression', 'binary'))),
    'mmoe_gate_dnn_bn': ('MMOE', dict(gate_dnn_hidden_units=(16,), dnn_use_bn=True, num_experts=4,
                                      expert_dnn_hidden_units=(32, 16),
                                      task_types=('binary', 'regression'),
                                      task_names=('click', 'price'))),
    'mmoe_three_tasks_deep_towers': ('MMOE', dict(tower_dnn_hidden_units=(32, 8),
                                                  expert_dnn_hidden_units=(64,),
                                                  task_types=('binary', 'regression', 'binary'),
                                                  task_names=('a', 'b', 'c'))),
    'shared_bottom_defaults': ('SharedBottom', {}),
    'shared_bottom_bn_no_towers': ('SharedBottom', dict(dnn_use_bn=True,
                                                        tower_dnn_hidden_units=(),
                                                        task_types=('binary', 'regression'))),
}


def random_inputs(columns, rows, rng):
    return {column.name: (rng.integers(0, column.vocabulary_size, (rows, 1)).astype('int32')
                          if hasattr(column, 'vocabulary_size') else
                          rng.normal(size=(rows, column.dimension)).astype('float32'))
            for column in columns}


@pytest.mark.parametrize('config', list(COPY_CONFIGS))
def test_deepctr_weights_copied_give_the_same_predictions(config):
    model_name, kwargs = COPY_CONFIGS[config]
    rng = np.random.default_rng(5)
    theirs = getattr(deepctr_models, model_name)(copy_columns(deepctr_feature_column), **kwargs)
    # Random weights everywhere (moving variances positive), so that every weight counts.
    theirs.set_weights([rng.uniform(0.5, 1.5, w.shape) if 'moving_variance' in w.name else
                        rng.normal(0, 0.3, w.shape) for w in theirs.weights])
    ours = copy_deepctr_weights(
        theirs, getattr(models, model_name)(copy_columns(feature_column), **kwargs))
    x = random_inputs(copy_columns(feature_column), 256, rng)
    expected = theirs.predict(x, batch_size=256, verbose=0)
    got = ours.predict(x, batch_size=256, verbose=0)
    for e, g in zip(expected, got):
        assert np.std(e) > 1e-3  # the inputs move the outputs
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_copy_names_the_layer_where_models_differ():
    theirs = deepctr_models.MMOE(copy_columns(deepctr_feature_column), num_experts=3)
    ours = models.MMOE(copy_columns(feature_column), num_experts=4)
    with pytest.raises(ValueError, match="no layer 'expert_3'"):
        copy_deepctr_weights(theirs, ours)


FIT_ROWS, FIT_EPOCHS, FIT_BATCH = 4096, 4, 128
FIT_KWARGS = dict(expert_dnn_hidden_units=(64, 32), tower_dnn_hidden_units=(16,))


def fit_loss(module, fc, seed):
    """The training loss of the last epoch and the loss on held-out rows, after FIT_EPOCHS passes
    of `fit` with `keras.utils.set_random_seed(seed)`, on data that depends on a sparse and a dense
    feature."""
    rng = np.random.default_rng(0)
    columns = [fc.SparseFeat('cat', 20, 4), fc.DenseFeat('num', 2)]
    x = random_inputs(columns, 2 * FIT_ROWS, rng)
    logit = x['num'][:, 0] - x['num'][:, 1] + (x['cat'][:, 0] % 3 - 1.0)
    y = [(rng.random(2 * FIT_ROWS) < 1 / (1 + np.exp(-logit))).astype('float32'),
         (rng.random(2 * FIT_ROWS) < 1 / (1 + np.exp(logit))).astype('float32')]
    train = {name: values[:FIT_ROWS] for name, values in x.items()}
    held_out = {name: values[FIT_ROWS:] for name, values in x.items()}
    keras.utils.set_random_seed(seed)
    model = module.MMOE(columns, **FIT_KWARGS)
    model.compile('adam', loss=['binary_crossentropy', 'binary_crossentropy'])
    history = model.fit(train, [label[:FIT_ROWS] for label in y], batch_size=FIT_BATCH,
                        epochs=FIT_EPOCHS, verbose=0)
    evaluated = model.evaluate(held_out, [label[FIT_ROWS:] for label in y], batch_size=1024,
                               verbose=0)
    return history.history['loss'][-1], evaluated[0]


@pytest.mark.slow
def test_fit_ends_within_noise_of_deepctr():
    """Both from their own initial weights, as users run them: the difference between DeepCTR and
    us is no larger than what another seed makes."""
    seeds = (1, 2, 3)
    ours = np.array([fit_loss(models, feature_column, seed) for seed in seeds])
    deepctr = np.array([fit_loss(deepctr_models, deepctr_feature_column, seed) for seed in seeds])
    noise = np.maximum(np.ptp(ours, axis=0), np.ptp(deepctr, axis=0))
    gap = np.abs(ours.mean(axis=0) - deepctr.mean(axis=0))
    assert np.all(gap <= np.maximum(noise, 0.01)), (ours, deepctr)
    assert np.all(ours[:, 1] < 2 * np.log(2) - 0.1)  # both tasks learnt something


@pytest.mark.parametrize('build, message', [
    (lambda: feature_column.SparseFeat('user', 100, 8, True), r"'user': use_hash=True .*ids in"),
    (lambda: feature_column.SparseFeat('user', 100, vocabulary_path='v.txt'),
     r"'user': vocabulary_path .*Transform"),
    (lambda: feature_column.SparseFeat('user', 100, embeddings_initializer='zeros'),
     r"'user': embeddings_initializer .*RandomNormal"),
    (lambda: feature_column.DenseFeat('price', 1, 'float32', abs), r"'price': transform_fn"),
    (lambda: feature_column.VarLenSparseFeat(feature_column.SparseFeat('genres', 20), 5),
     r"VarLenSparseFeat 'genres'.* not supported"),
])
def test_unsupported_deepctr_arguments_say_what_to_do(build, message):
    with pytest.raises(ValueError, match=message):
        build()
