"""Sequence features on the model side: `SequencePooling` and `AttentionSequencePooling` against
NumPy, `SparseEmbeddings` gathering sequences from its fused tables, and models with
`VarLenSparseFeat` that train, save and serve. Parity with DeepCTR itself is in
test_deepctr_parity.py; the one place we differ from it on purpose (max over no position) is here."""

import numpy as np
import pytest
import tensorflow as tf

from trainer_module.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat
from trainer_module.layers import AttentionSequencePooling, SequencePooling, SparseEmbeddings
from trainer_module.models import MMOE

SMALL = dict(expert_dnn_hidden_units=(8,), tower_dnn_hidden_units=(4,))


def _sequences(rows=6, maxlen=4, dim=3, seed=0):
    """Embeddings [rows, maxlen, dim], lengths [rows, 1] (0 and beyond maxlen among them) and ids
    [rows, maxlen] (0 as padding, some rows all padding)."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(rows, maxlen, dim)).astype('float32')
    lengths = np.array([[0], [1], [maxlen], [2], [maxlen + 3], [3]], 'int32')[:rows]
    ids = rng.integers(1, 9, (rows, maxlen))
    ids[rng.random((rows, maxlen)) < 0.4] = 0
    ids[0] = 0
    return embeddings, lengths, ids


def _counted(lengths, ids, padding, maxlen):
    if padding == 'length':
        return np.arange(maxlen)[None, :] < np.minimum(lengths, maxlen)
    return ids != 0


@pytest.mark.parametrize('padding', ['length', 'zero_id'])
@pytest.mark.parametrize('combiner', ['sum', 'mean', 'max'])
def test_sequence_pooling_pools_the_positions_that_count(combiner, padding):
    """Over the first `length` positions (a length over maxlen counts maxlen) or the non-zero ids;
    no position pools to 0 whatever the combiner."""
    embeddings, lengths, ids = _sequences()
    counted = _counted(lengths, ids, padding, embeddings.shape[1])
    got = SequencePooling(combiner, padding)(
        [embeddings, lengths if padding == 'length' else ids]).numpy()
    for row, keep in enumerate(counted):
        values = embeddings[row][keep]
        expected = (np.zeros(embeddings.shape[2]) if not len(values) else
                    {'sum': values.sum(0), 'mean': values.mean(0), 'max': values.max(0)}[combiner])
        np.testing.assert_allclose(got[row], expected, rtol=1e-5, atol=1e-6)
    assert not counted[0].any() and np.all(got[0] == 0)


@pytest.mark.parametrize('weight_norm', [True, False])
def test_sequence_pooling_weighs_positions_as_deepctrs_weighted_sequence_layer(weight_norm):
    """Weights scale each counted position: a softmax over the counted positions, or as given."""
    embeddings, lengths, _ = _sequences()
    weights = np.random.default_rng(1).normal(size=embeddings.shape[:2] + (1,)).astype('float32')
    got = SequencePooling('sum', 'length', weight_norm)([embeddings, lengths, weights]).numpy()
    counted = _counted(lengths, None, 'length', embeddings.shape[1])
    for row, keep in enumerate(counted):
        w = weights[row, keep, 0]
        if weight_norm and len(w):
            w = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
        np.testing.assert_allclose(got[row], (embeddings[row][keep] * w[:, None]).sum(0),
                                   rtol=1e-5, atol=1e-6)


def test_max_over_no_position_is_zero_where_deepctrs_is_minus_1e9():
    """The one pooling we give otherwise than DeepCTR: its max of an empty sequence is the masked
    positions' offset, about -1e9; ours adds nothing to the DNN input. Where a position counts the
    two agree."""
    from deepctr.layers.sequence import SequencePoolingLayer
    embeddings, lengths, _ = _sequences()
    theirs = SequencePoolingLayer('max')([embeddings, lengths]).numpy()[:, 0]
    ours = SequencePooling('max')([embeddings, lengths]).numpy()
    assert np.all(theirs[0] < -0.9e9) and np.all(ours[0] == 0)
    np.testing.assert_array_equal(ours[1:], theirs[1:])


def _local_activation(layer, query, keys):
    """DIN's scores, from the layer's weights in NumPy: sigmoid MLP over [q, k, q - k, q * k]."""
    x = np.concatenate([np.broadcast_to(query, keys.shape), keys, query - keys, query * keys], -1)
    for kernel, bias in zip(layer.mlp.kernels, layer.mlp.biases):
        x = 1 / (1 + np.exp(-(x @ kernel.numpy() + bias.numpy())))
    return x @ layer.kernel.numpy() + layer.bias.numpy()  # [rows, maxlen, 1]


@pytest.mark.parametrize('padding', ['length', 'zero_id'])
def test_attention_pooling_is_dins_local_activation_unit(padding):
    """The score-weighted sum of the counted positions, scores unnormalised; what does not count
    (padding, positions beyond the length) moves nothing; no history pools to 0."""
    embeddings, lengths, ids = _sequences()
    query = np.random.default_rng(2).normal(size=(len(embeddings), 1, 3)).astype('float32')
    mask_source = lengths if padding == 'length' else ids
    layer = AttentionSequencePooling(hidden_units=(5, 4), padding=padding)
    got = layer([query, embeddings, mask_source]).numpy()
    counted = _counted(lengths, ids, padding, embeddings.shape[1])[:, :, None]
    scores = _local_activation(layer, query, embeddings)
    np.testing.assert_allclose(got, (scores * counted * embeddings).sum(1), rtol=1e-4, atol=1e-6)
    assert np.all(got[0] == 0)
    other = np.where(counted, embeddings, 100.0).astype('float32')
    np.testing.assert_allclose(layer([query, other, mask_source]).numpy(), got, rtol=1e-6)
    summed = (scores * counted).sum(axis=(1, 2))
    assert not np.allclose(summed[counted.any(axis=(1, 2))], 1.0)  # no softmax


def test_attention_pooling_needs_a_query_of_the_sequences_dimension():
    with pytest.raises(ValueError, match='query is of dimension 4, the sequence of 3'):
        AttentionSequencePooling()([np.zeros((2, 1, 4), 'float32'), np.zeros((2, 5, 3), 'float32'),
                                    np.ones((2, 1), 'int32')])


def test_sequences_gather_from_the_fused_tables_once_per_group():
    """Single ids and sequences of one dimension read one variable in one gather, a table shared
    by a single feature and a sequence is one block; a run of single ids comes out concatenated,
    each sequence on its own, in input order."""
    layer = SparseEmbeddings([('item', 10, 4, True), ('user', 6, 8, True),
                              ('item', 10, 4, True, 3), ('city', 5, 4, True),
                              ('genre', 7, 4, True, 2)])
    ids = [tf.constant([[3], [9]]), tf.constant([[5], [0]]), tf.constant([[1, 2, 0], [9, 9, 4]]),
           tf.constant([[4], [1]]), tf.constant([[6, 0], [1, 2]])]
    single, history, city, genres = layer(ids)
    dim4, dim8 = (table.numpy() for table in layer.tables)
    assert dim4.shape == (10 + 5 + 7, 4) and dim8.shape == (6, 8)
    item, genre = dim4[:10], dim4[15:]
    np.testing.assert_array_equal(single, np.concatenate([item[[3, 9]], dim8[[5, 0]]], axis=1))
    np.testing.assert_array_equal(history, item[[[1, 2, 0], [9, 9, 4]]])
    np.testing.assert_array_equal(city, dim4[10:15][[4, 1]])
    np.testing.assert_array_equal(genres, genre[[[6, 0], [1, 2]]])
    assert [tuple(shape) for shape in layer.compute_output_shape([(2, 1)] * 5)] == [
        (2, 12), (2, 3, 4), (2, 4), (2, 2, 4)]
    graph = tf.function(layer).get_concrete_function(
        [tf.TensorSpec(i.shape, tf.int32) for i in ids]).graph
    assert sum(op.type == 'ResourceGather' for op in graph.get_operations()) == 2


def test_sequence_ids_outside_the_vocabulary_are_refused():
    layer = SparseEmbeddings([('item', 10, 4, True, 3)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r'item < 10'):
        layer([tf.constant([[1, 10, 0]])])


def _sequence_columns():
    return [SparseFeat('item', 12, 4), SparseFeat('user', 40, 4, use_hash=True, dtype='string'),
            VarLenSparseFeat(SparseFeat('history', 12, 4, embedding_name='item'), 5, 'mean',
                             length_name='history_length'),
            VarLenSparseFeat(SparseFeat('tags', 9, 8, use_hash=True, dtype='string'), 3, 'max'),
            VarLenSparseFeat(SparseFeat('recent', 12, 4, embedding_name='item'), 4, 'attention',
                             length_name='recent_length', query_name='item'),
            DenseFeat('price')]


def _sequence_inputs(rows, rng):
    return {'item': rng.integers(0, 12, (rows, 1)).astype('int32'),
            'user': rng.choice(np.array(['ann', 'bo', 'cy', '']), (rows, 1)),
            'history': rng.integers(0, 12, (rows, 5)).astype('int32'),
            'history_length': rng.integers(0, 6, (rows, 1)).astype('int32'),
            'tags': rng.choice(np.array(['0', 'red', 'big', 'old']), (rows, 3)),
            'recent': rng.integers(0, 12, (rows, 4)).astype('int32'),
            'recent_length': rng.integers(0, 5, (rows, 1)).astype('int32'),
            'price': rng.normal(size=(rows, 1)).astype('float32')}


def test_a_model_of_sequences_saves_and_serves_the_same_predictions(tmp_path):
    """Raw strings hashed in the graph, lengths, attention: the SavedModel's serving signature
    gives the Keras model's predictions."""
    model = MMOE(_sequence_columns(), **SMALL)
    for weight in model.weights:  # away from the near-zero initial embeddings
        weight.assign(np.random.default_rng(4).normal(0, 0.5, weight.shape))
    inputs = _sequence_inputs(32, np.random.default_rng(5))
    model.save(str(tmp_path / 'model'), save_format='tf')
    served = tf.saved_model.load(str(tmp_path / 'model')).signatures['serving_default'](
        **{name: tf.constant(values) for name, values in inputs.items()})
    for name, expected in zip(model.output_names, model(inputs, training=False)):
        assert np.std(expected.numpy()) > 1e-3
        np.testing.assert_allclose(served[name].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_a_model_learns_from_the_sequence_the_query_attends_to():
    """Labels that depend only on whether the item is in the recent history: an attention model
    learns them (the query must meet the keys), well beyond chance after a few epochs."""
    rng = np.random.default_rng(6)
    columns = [SparseFeat('item', 12, 4), VarLenSparseFeat(
        SparseFeat('recent', 12, 4, embedding_name='item'), 4, 'attention',
        length_name='recent_length', query_name='item')]
    rows = 2048
    x = {'item': rng.integers(1, 12, (rows, 1)).astype('int32'),
         'recent': rng.integers(1, 12, (rows, 4)).astype('int32'),
         'recent_length': rng.integers(0, 5, (rows, 1)).astype('int32')}
    seen = (x['recent'] == x['item']) & (np.arange(4)[None, :] < x['recent_length'])
    label = seen.any(axis=1).astype('float32')[:, None]
    tf.keras.utils.set_random_seed(0)
    model = MMOE(columns, expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=(8,),
                 l2_reg_embedding=0)
    model.compile(tf.keras.optimizers.Adam(0.02), loss=['binary_crossentropy'] * 2)
    model.fit(x, [label, label], batch_size=128, epochs=12, verbose=0)
    accuracy = np.mean((model.predict(x, verbose=0)[0] > 0.5) == label)
    assert accuracy > max(label.mean(), 1 - label.mean()) + 0.1, accuracy


@pytest.mark.parametrize('columns, message', [
    ([SparseFeat('item', 10, 8), VarLenSparseFeat(SparseFeat('recent', 10, 4), 3, 'attention',
                                                  query_name='item')],
     r"'recent': query_name 'item' has embedding_dim 8, the sequence 4"),
    ([SparseFeat('user', 10, 4), VarLenSparseFeat(SparseFeat('recent', 10, 4), 3, 'attention',
                                                  query_name='item')],
     r"'recent': query_name 'item' is not a SparseFeat of the feature columns"),
])
def test_attention_queries_are_checked(columns, message):
    with pytest.raises(ValueError, match=message):
        MMOE(columns, **SMALL)


def test_maxlen_may_be_a_numpy_integer():
    """As a script computes it (`max(lengths)` of an array)."""
    column = VarLenSparseFeat(SparseFeat('genres', 20), np.max(np.array([3, 5])))
    assert column.maxlen == 5 and type(column.maxlen) is int
    with pytest.raises(ValueError, match="'genres': maxlen must be a positive integer, got 2.5"):
        VarLenSparseFeat(SparseFeat('genres', 20), 2.5)
