"""Our MMOE, SharedBottom, PLE and ESMM against DeepCTR 0.9.4 itself, in this process: the same
parameter counts and errors, the same function (DeepCTR's weights copied into ours give the same
predictions; an ESMM's cvr too), and training that ends within noise of DeepCTR's."""

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
PLE_CONFIGS = {
    'ple_defaults': {},
    'ple_one_level_more_experts': dict(num_levels=1, shared_expert_num=2, specific_expert_num=3,
                                       gate_dnn_hidden_units=(8,)),
    'ple_three_levels_bn_regression': dict(num_levels=3, dnn_use_bn=True,
                                           task_types=('binary', 'regression')),
}
ESMM_CONFIGS = {
    'esmm_defaults': {},
    'esmm_narrow_towers': dict(tower_dnn_hidden_units=(16,), dnn_use_bn=True),
}
ERROR_CONFIGS = {  # (model, arguments)
    'one_task': ('MMOE', dict(task_types=('binary',), task_names=('ctr',))),
    'one_expert': ('MMOE', dict(num_experts=1)),
    'lengths_differ': ('MMOE', dict(task_types=('binary',))),
    'unknown_task_type': ('MMOE', dict(task_types=('binary', 'multiclass'))),
    'ple_one_task': ('PLE', dict(task_types=('binary',), task_names=('ctr',))),
    'ple_lengths_differ': ('PLE', dict(task_types=('binary', 'binary', 'binary'))),
    'ple_unknown_task_type': ('PLE', dict(task_types=('regression', 'ranking'))),
    'esmm_three_tasks': ('ESMM', dict(task_names=('ctr', 'cvr', 'ctcvr'))),
    'esmm_one_task': ('ESMM', dict(task_types=('binary',), task_names=('ctr',))),
    'esmm_regression': ('ESMM', dict(task_types=('binary', 'regression'))),
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
    for name, kwargs in PLE_CONFIGS.items():
        result[name] = _counts(module.PLE(columns, **kwargs))
    for name, kwargs in ESMM_CONFIGS.items():
        result[name] = _counts(module.ESMM(columns, **kwargs))
    for name, (model, kwargs) in ERROR_CONFIGS.items():
        try:
            getattr(module, model)(columns, **kwargs)
            result[name] = {'error': None}
        except ValueError as error:
            result[name] = {'error': str(error)}
    return result


@pytest.fixture(scope='module')
def measured():
    return measure(deepctr_models, deepctr_feature_column), measure(models, feature_column)


@pytest.mark.parametrize('config', list(MMOE_CONFIGS) + list(SHARED_BOTTOM_CONFIGS)
                         + list(PLE_CONFIGS) + list(ESMM_CONFIGS))
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


def test_varlen_feature_columns_take_deepctrs_positional_arguments():
    """DeepCTR's fields in its order, then our query_name (None); its properties read through."""
    args = ('user', 100, 8, False, None, 'int64', None, 'user_table', 'users', False)
    ours = feature_column.VarLenSparseFeat(feature_column.SparseFeat(*args), 7, 'sum', 'user_n',
                                           'user_w', False)
    theirs = deepctr_feature_column.VarLenSparseFeat(deepctr_feature_column.SparseFeat(*args), 7,
                                                     'sum', 'user_n', 'user_w', False)
    assert ours._fields == theirs._fields + ('query_name',)
    assert tuple(ours)[1:] == tuple(theirs)[1:] + (None,)
    for field in ('name', 'vocabulary_size', 'embedding_dim', 'use_hash', 'vocabulary_path',
                  'dtype', 'embedding_name', 'group_name', 'trainable'):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.embeddings_initializer is None
    assert (feature_column.VarLenSparseFeat(feature_column.SparseFeat('genres', 20), 5)
            == (feature_column.SparseFeat('genres', 20), 5, 'mean', None, None, True, None))


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
    'ple_defaults': ('PLE', {}),
    'ple_one_level_gate_dnn': ('PLE', dict(num_levels=1, shared_expert_num=2,
                                           specific_expert_num=3, gate_dnn_hidden_units=(8,),
                                           expert_dnn_hidden_units=(16,))),
    'ple_two_levels_no_towers_three_tasks': ('PLE', dict(
        shared_expert_num=2, specific_expert_num=2, tower_dnn_hidden_units=(),
        gate_dnn_hidden_units=(16, 8), expert_dnn_hidden_units=(32, 16),
        task_types=('binary', 'regression', 'binary'), task_names=('a', 'b', 'c'))),
    'ple_three_levels_regression': ('PLE', dict(num_levels=3, expert_dnn_hidden_units=(16,),
                                                task_types=('regression', 'binary'))),
    'ple_one_level_bn': ('PLE', dict(num_levels=1, dnn_use_bn=True)),
    'esmm_defaults': ('ESMM', {}),
    'esmm_one_narrow_tower_bn': ('ESMM', dict(tower_dnn_hidden_units=(8,), dnn_use_bn=True,
                                              task_names=('click', 'purchase'))),
    'esmm_no_towers': ('ESMM', dict(tower_dnn_hidden_units=())),
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


def test_esmm_serves_deepctrs_cvr_beside_its_two_outputs():
    """DeepCTR's outputs (ctr, ctcvr) by position, as a drop-in script reads them; the cvr, the
    factor of ctcvr, by name from `predictions_model`."""
    rng = np.random.default_rng(6)
    theirs = deepctr_models.ESMM(copy_columns(deepctr_feature_column), tower_dnn_hidden_units=(8,))
    theirs.set_weights([rng.normal(0, 0.3, w.shape) for w in theirs.weights])
    ours = copy_deepctr_weights(theirs, models.ESMM(copy_columns(feature_column),
                                                    tower_dnn_hidden_units=(8,)))
    assert ours.output_names == theirs.output_names == ['ctr', 'ctcvr']
    their_cvr = theirs.get_layer('ctcvr').inbound_nodes[0].inbound_layers[1]
    x = random_inputs(copy_columns(feature_column), 64, rng)
    expected = keras.Model(theirs.inputs, their_cvr.output).predict(x, verbose=0)
    got = models.predictions_model(ours).predict(x, verbose=0)
    assert set(got) == {'ctr', 'ctcvr', models.esmm_cvr_name(('ctr', 'ctcvr'))}
    np.testing.assert_allclose(got['ctcvr_given_ctr'], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got['ctcvr'], got['ctr'] * got['ctcvr_given_ctr'], rtol=1e-6)


@pytest.mark.parametrize('model, kwargs, message', [
    ('MMOE', dict(num_experts=4), "no layer 'expert_3'"),
    ('PLE', dict(specific_expert_num=2), "no layer 'level_0_task_ctr_expert_specific_1'"),
    ('PLE', dict(num_levels=1), r"experts ours has not: \['level_1_expert_shared_0'"),
    ('ESMM', {}, 'experts ours has not'),
])
def test_copy_names_the_layer_where_models_differ(model, kwargs, message):
    """Ours of other arguments (or another model) than DeepCTR's MMOE and PLE of defaults."""
    theirs = getattr(deepctr_models, 'PLE' if model == 'ESMM' else model)(
        copy_columns(deepctr_feature_column))
    ours = getattr(models, model)(copy_columns(feature_column), **kwargs)
    with pytest.raises(ValueError, match=message):
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
    (lambda: feature_column.SparseFeat('user', 100, vocabulary_path='v.txt'),
     r"'user': vocabulary_path .*Transform"),
    (lambda: feature_column.SparseFeat('user', 100, embeddings_initializer='zeros'),
     r"'user': embeddings_initializer .*RandomNormal"),
    (lambda: feature_column.SparseFeat('user', 100, dtype='string'),
     r"'user': dtype='string' needs use_hash=True"),
    (lambda: feature_column.DenseFeat('price', 1, 'float32', abs), r"'price': transform_fn"),
    (lambda: feature_column.VarLenSparseFeat(feature_column.SparseFeat('genres', 20), 5, 'attn'),
     r"'genres': combiner must be one of"),
    (lambda: feature_column.VarLenSparseFeat(feature_column.SparseFeat('genres', 20), 0),
     r"'genres': maxlen must be a positive integer"),
    (lambda: feature_column.VarLenSparseFeat(feature_column.SparseFeat('genres', 20), 5,
                                             query_name='item'),
     r"'genres': combiner='attention' takes query_name"),
    (lambda: feature_column.VarLenSparseFeat(feature_column.SparseFeat('genres', 20), 5,
                                             'attention'),
     r"'genres': combiner='attention' takes query_name"),
    (lambda: feature_column.VarLenSparseFeat(feature_column.SparseFeat('genres', 20), 5,
                                             'attention', weight_name='w', query_name='item'),
     r"'genres': weight_name with combiner='attention' is not supported"),
    (lambda: feature_column.VarLenSparseFeat(
        deepctr_feature_column.SparseFeat('genres', 20), 5),
     r"'genres': sparsefeat must be a trainer_module.feature_column.SparseFeat"),
])
def test_unsupported_deepctr_arguments_say_what_to_do(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# Sequences (VarLenSparseFeat) of every combiner DeepCTR has, their positions counted by a length
# input or by non-zero ids, hashed columns (strings and integers; single ids and sequences), and
# tables shared between single features and sequences, over three groups.
def sequence_columns(fc):
    return {
        'by_length': [
            fc.SparseFeat('item', 30, 4),
            fc.VarLenSparseFeat(fc.SparseFeat('clicks', 30, 4), 6, 'mean', length_name='clicks_n'),
            fc.VarLenSparseFeat(fc.SparseFeat('carts', 12, 8), 4, 'sum', length_name='carts_n'),
            fc.VarLenSparseFeat(fc.SparseFeat('views', 9, 4), 5, 'max', length_name='views_n'),
            fc.DenseFeat('price')],
        'by_zero_id': [
            fc.VarLenSparseFeat(fc.SparseFeat('genres', 20, 4), 5, 'mean'),
            fc.SparseFeat('user', 40, 8),
            fc.VarLenSparseFeat(fc.SparseFeat('tags', 15, 8), 3, 'sum'),
            fc.VarLenSparseFeat(fc.SparseFeat('brands', 11, 4), 4, 'max'),
            fc.DenseFeat('age', 2)],
        'shared_tables_and_groups': [
            # 'item' is a single feature's table and two sequences'; DeepCTR keeps the last
            # sequence's layer (named after it, its vocabulary), and looks 'item' up in it too.
            fc.SparseFeat('item', 30, 4),
            fc.VarLenSparseFeat(fc.SparseFeat('history', 30, 4, embedding_name='item'), 5,
                                'mean', length_name='history_n'),
            fc.VarLenSparseFeat(fc.SparseFeat('later', 32, 4, embedding_name='item',
                                              group_name='later'), 3, 'max'),
            fc.SparseFeat('shop', 10, 8, group_name='shops'),
            fc.VarLenSparseFeat(fc.SparseFeat('shops_seen', 10, 8, embedding_name='shop',
                                              group_name='shops'), 4, 'sum'),
            fc.SparseFeat('city', 6, 4, group_name='later'),
            fc.SparseFeat('item_again', 30, 4, embedding_name='item'),
            fc.DenseFeat('price')],
        'hashed': [
            fc.SparseFeat('user', 50, 4, use_hash=True, dtype='string'),
            fc.SparseFeat('zip', 40, 4, use_hash=True, dtype='int64'),
            fc.VarLenSparseFeat(fc.SparseFeat('queries', 25, 4, use_hash=True, dtype='string'),
                                4, 'mean'),
            fc.VarLenSparseFeat(fc.SparseFeat('codes', 18, 8, use_hash=True, dtype='int32'),
                                3, 'max', length_name='codes_n'),
            fc.SparseFeat('item', 9, 8),
            fc.DenseFeat('price')],
        'weighted': [
            fc.VarLenSparseFeat(fc.SparseFeat('rated', 20, 4), 5, 'sum', length_name='rated_n',
                                weight_name='ratings'),
            fc.VarLenSparseFeat(fc.SparseFeat('bought', 14, 4), 4, 'mean', weight_name='counts',
                                weight_norm=False),
            fc.VarLenSparseFeat(fc.SparseFeat('kept', 8, 4), 3, 'max', weight_name='days',
                                length_name='kept_n', weight_norm=False),
            fc.SparseFeat('user', 40, 4),
            fc.DenseFeat('price')],
    }


TOKENS = np.array(['0', 'a', 'b', 'cc', 'd d', '', 'é', '17'])


def sequence_inputs(columns, rows, rng):
    """Random inputs of `columns`: ids within each column's vocabulary, raw strings or numbers of
    hashed columns ('0' and 0 among them), lengths from 0 to maxlen and zero ids among the ids.
    A 'max' sequence counts at least one position in every row: on none DeepCTR's gives -1e9 and
    ours 0 (test_sequence_features.py)."""
    x = {}
    for column in columns:
        if isinstance(column, (feature_column.DenseFeat, deepctr_feature_column.DenseFeat)):
            x[column.name] = rng.normal(size=(rows, column.dimension)).astype('float32')
            continue
        sequence = hasattr(column, 'maxlen')
        shape = (rows, column.maxlen) if sequence else (rows, 1)
        if column.use_hash and column.dtype == 'string':
            values = rng.choice(TOKENS, shape)
        elif column.use_hash:
            values = rng.integers(0, 4, shape).astype(column.dtype)
        else:
            values = rng.integers(0, column.vocabulary_size, shape).astype(column.dtype)
        if sequence:
            empty = TOKENS[0] if values.dtype.kind == 'U' else 0
            values[rng.random(shape) < 0.3] = empty
            lowest = 1 if column.combiner == 'max' else 0
            if column.length_name is not None:
                x[column.length_name] = rng.integers(lowest, column.maxlen + 1,
                                                     (rows, 1)).astype('int32')
            elif lowest:
                values[:, 0] = (TOKENS[1] if values.dtype.kind == 'U' else
                                rng.integers(1, min(column.vocabulary_size, 4), rows))
            if column.weight_name is not None:
                x[column.weight_name] = rng.normal(size=(rows, column.maxlen, 1)).astype('float32')
        x[column.name] = values
    return x


SEQUENCE_COPY_CONFIGS = {  # (model, columns of sequence_columns, arguments)
    'mmoe_by_length': ('MMOE', 'by_length', {}),
    'mmoe_by_zero_id_bn': ('MMOE', 'by_zero_id', dict(gate_dnn_hidden_units=(8,),
                                                      dnn_use_bn=True)),
    'mmoe_shared_tables': ('MMOE', 'shared_tables_and_groups',
                           dict(task_types=('binary', 'regression'))),
    'mmoe_hashed': ('MMOE', 'hashed', dict(num_experts=4, tower_dnn_hidden_units=(16, 8))),
    'mmoe_weighted': ('MMOE', 'weighted', {}),
    'shared_bottom_shared_tables': ('SharedBottom', 'shared_tables_and_groups', {}),
}


@pytest.mark.parametrize('config', list(SEQUENCE_COPY_CONFIGS))
def test_deepctr_weights_copied_give_the_same_predictions_with_sequences(config):
    model_name, columns, kwargs = SEQUENCE_COPY_CONFIGS[config]
    rng = np.random.default_rng(11)
    theirs_columns = sequence_columns(deepctr_feature_column)[columns]
    ours_columns = sequence_columns(feature_column)[columns]
    assert (feature_column.get_feature_names(ours_columns)
            == deepctr_feature_column.get_feature_names(theirs_columns))
    theirs = getattr(deepctr_models, model_name)(theirs_columns, **kwargs)
    ours = getattr(models, model_name)(ours_columns, **kwargs)
    assert _counts(ours) == _counts(theirs)
    theirs.set_weights([rng.uniform(0.5, 1.5, w.shape) if 'moving_variance' in w.name else
                        rng.normal(0, 0.3, w.shape) for w in theirs.weights])
    copy_deepctr_weights(theirs, ours)
    x = sequence_inputs(ours_columns, 256, rng)
    expected = theirs.predict(x, batch_size=256, verbose=0)
    got = ours.predict(x, batch_size=256, verbose=0)
    for e, g in zip(expected, got):
        assert np.std(e) > 1e-3
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_each_sequence_input_moves_the_predictions_as_deepctrs():
    """Every input counts in both models alike: changing one input's values (another length,
    other ids) changes the copied model's predictions as it changes DeepCTR's."""
    rng = np.random.default_rng(12)
    theirs_columns = sequence_columns(deepctr_feature_column)['shared_tables_and_groups']
    ours_columns = sequence_columns(feature_column)['shared_tables_and_groups']
    theirs = deepctr_models.MMOE(theirs_columns)
    theirs.set_weights([rng.normal(0, 0.3, w.shape) for w in theirs.weights])
    ours = copy_deepctr_weights(theirs, models.MMOE(ours_columns))
    x = sequence_inputs(ours_columns, 64, rng)
    other = sequence_inputs(ours_columns, 64, rng)
    for name in feature_column.get_feature_names(ours_columns):
        changed = dict(x, **{name: other[name]})
        expected = theirs.predict(changed, verbose=0)[0] - theirs.predict(x, verbose=0)[0]
        got = ours.predict(changed, verbose=0)[0] - ours.predict(x, verbose=0)[0]
        assert np.abs(expected).max() > 1e-4, name
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_hashed_ids_are_deepctrs():
    """Our Hash gives DeepCTR's ids: a single feature's over [0, buckets), a sequence's with 0
    for the value 0 (strings, integers and floats)."""
    from deepctr.layers.utils import Hash as DeepCtrHash

    from trainer_module.layers import Hash
    values = [np.array([['0', 'a', ''], ['é', 'lake', '0.0']]),
              np.array([[0, 1, 12345], [-3, 7, 0]], 'int64'),
              np.array([[0, 1, 2]], 'int32'),
              np.array([[0.0, 1.5, -2.25]], 'float32')]
    for value in values:
        for mask_zero in (False, True):
            np.testing.assert_array_equal(
                Hash(37, mask_zero=mask_zero)(value).numpy(),
                DeepCtrHash(37, mask_zero=mask_zero)(value).numpy())


def test_attention_models_are_not_copied_from_deepctr():
    sparse = feature_column.SparseFeat('item', 10, 4)
    ours = models.MMOE([sparse, feature_column.VarLenSparseFeat(
        feature_column.SparseFeat('history', 10, 4, embedding_name='item'), 3, 'attention',
        query_name='item')])
    theirs = deepctr_models.MMOE([deepctr_feature_column.SparseFeat('item', 10, 4)])
    with pytest.raises(ValueError, match='no attention combiner'):
        copy_deepctr_weights(theirs, ours)


@pytest.mark.parametrize('columns', list(sequence_columns(feature_column)))
def test_model_inputs_are_deepctrs(columns):
    """The same inputs in the same order: names, shapes and dtypes (a sequence's weights and
    length beside it)."""
    def inputs(module, fc):
        return [(i.name, tuple(i.shape), i.dtype.name)
                for i in module.MMOE(sequence_columns(fc)[columns]).inputs]
    assert inputs(models, feature_column) == inputs(deepctr_models, deepctr_feature_column)
