"""The feature kinds (trainer_module/features/) on tiny inputs: their config checks, bounded and
hashed vocabularies, lists and crosses through TFT's real Beam implementation, the exported
model's raw signature on them, list cells in ExampleGen's encoder, the raw serving signature's
split, and the draft's guesses. More on crosses: tests/test_cross_features.py."""

import functools
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from components.example_encoder import RowEncoder
from pipeline.config import ConfigError, PipelineConfig
from pipeline.draft import guess_roles
from trainer_module import features
from trainer_module.build import build_model
from trainer_module.export import export_serving_model
from trainer_module.features import SequenceFeature, SparseFeature
from trainer_module.preprocessing import preprocessing_fn
from trainer_module.serving import (
    instances_to_inputs,
    row_to_example,
    signature_input_dtypes,
    split_values,
)
from trainer_module.settings import RAW_SIGNATURE

BASE = ['slice_features=[]', 'drift=[]', 'evaluation.group_by=null', 'dense_features=[price]']


def _config(*assignments):
    return PipelineConfig().with_overrides([*BASE, *assignments])


# Config checks: each refusal names the key.

@pytest.mark.parametrize('assignments, message', [
    (['sequence_features=[{name: hist, separator: ","}]'],
     "sequence_features.hist.separator: ',' holds ','"),
    (['sparse_features=[{name: user_id, hash_buckets: 0}]'],
     'sparse_features.user_id.hash_buckets: must be a whole number, at least 1'),
    (['sparse_features=[{name: user_id, top_k: 0}]'],
     'sparse_features.user_id.top_k: must be a whole number, at least 1'),
    (['sparse_features=[{name: user_id, hash_buckets: 10, top_k: 5}]'],
     'sparse_features.user_id.top_k: a hashed feature (hash_buckets) has no vocabulary'),
    (['sparse_features=[{name: item_id, embedding_dim: 8}]',
      'sequence_features=[{name: hist, embedding_name: item_id, embedding_dim: 4}]'],
     "sequence_features.hist.embedding_dim: 4 where the shared table 'item_id' has 8"),
    (['sparse_features=[item_id]', 'sequence_features=[{name: hist, embedding_name: price}]'],
     "sequence_features.hist.embedding_name: 'price' is not a categorical feature"),
    (['sparse_features=[item_id]',
      'sequence_features=[{name: hist, embedding_name: item_id, top_k: 3}]'],
     "sequence_features.hist.top_k: the list shares the vocabulary of 'item_id'"),
    (['sparse_features=[item_id]', 'sequence_features=[{name: hist, combiner: attention}]'],
     'sequence_features.hist.query: the attention combiner needs a query'),
    (['sparse_features=[item_id]', 'dense_features=[{name: price, scaling: log}]'],
     "dense_features.price.scaling: 'log' is not one of ('z_score', 'min_max')"),
    (['sparse_features=[item_id]', 'sequence_features=[{name: hist, combiner: median}]'],
     "sequence_features.hist.combiner: 'median' is not one of"),
    (['sparse_features=[item_id]', 'sequence_features=[{name: hist, max_length: 0}]'],
     'sequence_features.hist.max_length: must be a whole number, at least 1'),
    (['sparse_features=[hist_length]', 'sequence_features=[hist]'],
     "'hist_length': a column of the data, and the name of a feature that 'hist' outputs"),
])
def test_a_bad_feature_setting_is_refused_naming_its_key(assignments, message):
    with pytest.raises(ConfigError, match=message.replace('(', r'\(').replace(')', r'\)')):
        _config(*assignments)


def test_a_list_shares_its_tables_dimension_and_settings_travel_to_the_trainer():
    config = _config('sparse_features=[{name: item_id, embedding_dim: 6, top_k: 100}]',
                     'sequence_features=[{name: hist, embedding_name: item_id, max_length: 3}]')
    settings = config.trainer_settings()
    assert settings.sequence_features == (SequenceFeature('hist', max_length=3,
                                                          embedding_name='item_id'),)
    assert features.separators(settings) == {'hist': '|'}
    ids = features.feature_ids(settings, settings.num_oov_buckets)
    # The list looks its values up in the item_id vocabulary.
    assert ids['hist'] == ids['item_id']
    assert ids['item_id'].vocabulary.top_k == 100
    assert features.sequence.dimension(settings.sequence_features[0],
                                       features.features_by_name(settings)) == 6


# Transform: bounded, hashed and list features through TFT's Beam implementation.

RAW_METADATA = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
    'item_id': tf.io.VarLenFeature(tf.string),
    'user_id': tf.io.VarLenFeature(tf.string),
    'zip': tf.io.VarLenFeature(tf.string),
    'hist': tf.io.VarLenFeature(tf.string),
    'tags': tf.io.VarLenFeature(tf.int64),
    'price': tf.io.VarLenFeature(tf.float32),
    'click': tf.io.VarLenFeature(tf.int64),
    'purchase': tf.io.VarLenFeature(tf.int64),
}))
TRANSFORM_CONFIG = _config(
    'sparse_features=[{name: item_id, min_frequency: 2, num_oov_buckets: 3}, '
    '{name: user_id, top_k: 2}, {name: zip, hash_buckets: 7}]',
    'sequence_features=[{name: hist, embedding_name: item_id, max_length: 3}, '
    '{name: tags, max_length: 2, combiner: sum}]',
    'cross_features=[{name: user_x_zip, columns: [user_id, zip], hash_buckets: 7}, '
    '{name: item_x_user, columns: [item_id, user_id], min_frequency: 2, num_oov_buckets: 2}]',
    # A small model: the export's signatures are under test, not its weights.
    'model.expert_dnn_hidden_units=[4]', 'model.tower_dnn_hidden_units=[2]',
    'dense_features=[{name: price, scaling: min_max}]')


def _row(item, user, zip_code, hist, tags, price):
    return {'item_id': [item], 'user_id': [user], 'zip': [zip_code], 'hist': hist, 'tags': tags,
            'price': [] if price is None else [price], 'click': [1], 'purchase': [0]}


TRAIN = [_row(b'i1', b'u1', b'z1', [b'i1', b'i2'], [5], 2.0),
         _row(b'i1', b'u1', b'z2', [b'i2', b'i3', b'i1', b'i2'], [5, 6, 7], 4.0),
         _row(b'i2', b'u2', b'z3', [], [], None),
         _row(b'i4', b'u3', b'z4', [b'i1'], [6], 1.0)]
SERVING = [_row(b'i1', b'u3', b'z1', [b'i9', b'i1', b'i2', b'i3'], [7, 5, 6], 7.0),
           _row(b'i3', b'u1', b'zz', [], [8], None)]


@pytest.fixture(scope='module')
def transformed(tmp_path_factory):
    """(the transformed SERVING rows, the TFTransformOutput)."""
    output_dir = str(tmp_path_factory.mktemp('transform_output'))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp('tft'))):
        transform_fn = ((TRAIN, RAW_METADATA) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn,
                              custom_config=TRANSFORM_CONFIG.transform_dict())))
        rows, _ = ((SERVING, RAW_METADATA), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # What Transform writes beside its graph, which the export's raw feature spec reads.
    metadata_io.write_metadata(RAW_METADATA, os.path.join(output_dir, 'metadata'))
    return rows, tft.TFTransformOutput(output_dir)


@pytest.mark.beam
def test_a_bounded_vocabulary_keeps_the_frequent_values_and_counts_the_lists_sharing_it(
        transformed):
    _, output = transformed
    # item_id counts the item column and the history (the kept last 3 values of each list):
    # i1 2 + 3, i2 1 + 3, i3 1, i4 1; min_frequency 2 keeps i1 and i2.
    assert output.vocabulary_by_name('item_id') == [b'i1', b'i2']
    # top_k 2: u1 (2) then u2 and u3 (1 each), the tie by token.
    assert output.vocabulary_by_name('user_id') == [b'u1', b'u2']
    # The last 2 of each list: [5], [6, 7], [], [6].
    assert output.vocabulary_by_name('tags') == [b'6', b'5', b'7']
    # A hashed feature has no vocabulary.
    with pytest.raises(ValueError):
        output.vocabulary_by_name('zip')


@pytest.mark.beam
def test_lists_keep_their_last_values_as_ids_padded_with_their_lengths(transformed):
    rows, output = transformed
    spec = output.transformed_feature_spec()
    assert spec['hist'] == tf.io.FixedLenFeature([3], tf.int64)
    assert spec['hist_length'] == tf.io.FixedLenFeature([], tf.int64)
    first, second = rows
    # The last 3 of [i9, i1, i2, i3]: i1 -> 0, i2 -> 1, i3 -> one of the 3 OOV ids after 2.
    assert list(first['hist'][:2]) == [0, 1] and 2 <= first['hist'][2] < 5
    assert first['hist_length'] == 3
    assert list(second['hist']) == [0, 0, 0] and second['hist_length'] == 0
    # Integer lists become their decimal text: the last 2 of [7, 5, 6] are 5 -> 1, 6 -> 0.
    assert list(first['tags']) == [1, 0] and first['tags_length'] == 2
    # 8 is unseen: the one default OOV id after the 3 tokens.
    assert list(second['tags']) == [3, 0] and second['tags_length'] == 1


@pytest.mark.beam
def test_min_max_scales_by_the_training_range_as_scikit_learns_scaler(transformed):
    rows, _ = transformed
    # Training prices 2, 4, missing, 1: (x - 1) / 3, not clipped beyond the range (MinMaxScaler's),
    # and a missing price takes the training mean, 7 / 3.
    np.testing.assert_allclose([row['price'] for row in rows], [2.0, 4 / 9], rtol=1e-6)


@pytest.mark.beam
def test_a_hashed_feature_hashes_in_the_graph_as_tensorflow_does(transformed):
    rows, _ = transformed
    expected = tf.strings.to_hash_bucket_fast([b'z1', b'zz'], 7).numpy()
    assert [row['zip'] for row in rows] == list(expected)
    assert [row['user_id'] for row in rows] == [2, 0]  # u3 is outside the top 2: OOV


@pytest.mark.beam
def test_the_model_columns_are_sized_from_the_vocabularies(transformed):
    _, output = transformed
    columns = {column.name: column for column in features.feature_columns_from_transform(
        TRANSFORM_CONFIG.trainer_settings(), output)}
    assert columns['item_id'].vocabulary_size == 2 + 3
    assert columns['zip'].vocabulary_size == 7
    assert columns['user_id'].vocabulary_size == 2 + 1
    hist = columns['hist']
    assert (hist.maxlen, hist.combiner, hist.length_name) == (3, 'mean', 'hist_length')
    assert (hist.vocabulary_size, hist.embedding_name) == (5, 'item_id')
    assert columns['tags'].vocabulary_size == 3 + 1


@pytest.mark.beam
def test_a_cross_hashes_or_counts_its_columns_values_joined(transformed):
    rows, output = transformed
    expected = tf.strings.to_hash_bucket_fast([b'u3_X_z1', b'u1_X_zz'], 7).numpy()
    assert [row['user_x_zip'] for row in rows] == list(expected)
    # i1 with u1 twice in training, every other combination once: min_frequency 2 keeps it.
    assert output.vocabulary_by_name('item_x_user') == [b'i1_X_u1']
    # i1 with u3 and i3 with u1 were never seen together: OOV ids after the one token.
    assert all(1 <= row['item_x_user'] < 3 for row in rows)
    columns = {column.name: column for column in features.feature_columns_from_transform(
        TRANSFORM_CONFIG.trainer_settings(), output)}
    assert (columns['user_x_zip'].vocabulary_size, columns['item_x_user'].vocabulary_size) == (7, 3)


@pytest.mark.beam
def test_the_exported_model_takes_the_raw_columns_and_computes_the_crosses_inside(
        transformed, tmp_path):
    _, output = transformed
    settings = TRANSFORM_CONFIG.trainer_settings()
    columns = features.feature_columns_from_transform(settings, output)
    export_serving_model(build_model(settings, columns), output, settings, columns,
                         str(tmp_path / '1'))
    model = tf.saved_model.load(str(tmp_path / '1'))
    raw = model.signatures[RAW_SIGNATURE]
    dtypes = signature_input_dtypes(raw)
    assert sorted(dtypes) == ['hist', 'item_id', 'price', 'tags', 'user_id', 'zip']
    instances = [{'item_id': 'i1', 'user_id': 'u1', 'zip': 'z1', 'hist': 'i2|i1', 'tags': '5',
                  'price': 2.0},
                 {'item_id': 'i3', 'user_id': 'u3', 'zip': 'zz', 'hist': '', 'tags': '6|7',
                  'price': float('nan')}]
    by_rows = raw(**instances_to_inputs(instances, dtypes))
    types = {'item_id': schema_pb2.BYTES, 'user_id': schema_pb2.BYTES, 'zip': schema_pb2.BYTES,
             'price': schema_pb2.FLOAT}
    examples = []
    for instance in instances:
        example = tf.train.Example.FromString(row_to_example(
            {name: instance[name] for name in types}, types))
        for name, values in (('hist', instance['hist']), ('tags', instance['tags'])):
            items = [v for v in values.split('|') if v]
            if name == 'hist':
                example.features.feature[name].bytes_list.value.extend(v.encode() for v in items)
            else:
                example.features.feature[name].int64_list.value.extend(int(v) for v in items)
        examples.append(example.SerializeToString())
    by_examples = model.signatures['serving_default'](examples=tf.constant(examples))
    assert set(by_rows) == {'ctr', 'ctcvr'}
    for task, scores in by_rows.items():
        np.testing.assert_allclose(scores.numpy(), by_examples[task].numpy(), rtol=0, atol=1e-6)


# ExampleGen's encoder and the raw serving signature read a list cell alike.

def _example(values):
    example = tf.train.Example()
    for name, (kind, items) in values.items():
        getattr(example.features.feature[name], kind).value.extend(items)
    return example.SerializeToString(deterministic=True)


def test_a_list_cell_becomes_a_multi_valued_feature_with_protobufs_bytes():
    encoder = RowEncoder(['hist', 'ints', 'x'], {'ints': 'INT', 'x': 'FLOAT'},
                         {'hist': '|', 'ints': ';'})
    examples, problems = encoder.encode([['a|b||c', '1;-2;3', '0.5'], ['', '7', ''],
                                         ['one', '1;x', '1']])
    assert examples == [
        _example({'hist': ('bytes_list', [b'a', b'b', b'', b'c']),
                  'ints': ('int64_list', [1, -2, 3]), 'x': ('float_list', [0.5])}),
        _example({'ints': ('int64_list', [7])})]
    assert problems == {2: "column 'ints': 'x' is not an integer"}


@pytest.mark.parametrize('cell', ['a|b||c', '', 'single', '|', 'x|'])
def test_the_raw_signature_splits_a_cell_as_exactgen_does(cell):
    encoded, _ = RowEncoder(['hist'], {}, {'hist': '|'}).encode([[cell]])
    parsed = tf.io.parse_example(encoded, {'hist': tf.io.VarLenFeature(tf.string)})['hist']
    split = split_values(tf.constant([cell]), '|', tf.string)
    assert split.values.numpy().tolist() == parsed.values.numpy().tolist()
    assert split.indices.numpy().tolist() == parsed.indices.numpy().tolist()


def test_the_raw_signature_reads_integer_lists():
    split = split_values(tf.constant(['3|-4', '']), '|', tf.int64)
    assert split.values.numpy().tolist() == [3, -4]
    assert split.indices.numpy().tolist() == [[0, 0], [0, 1]]


# The draft.

def test_the_draft_finds_lists_shared_tables_and_bounds_for_rare_ids():
    rng = np.random.default_rng(0)
    rows = 3000
    items = rng.integers(0, 300, rows)
    frame = pd.DataFrame({
        'user_id': [f'u{i}' for i in rng.permutation(rows)],  # every user once
        'item_id': items,
        'hist': ['|'.join(str(v) for v in rng.choice(items, rng.integers(0, 6)))
                 for _ in range(rows)],
        'device': rng.choice(['ios', 'android'], rows),
        'click': rng.integers(0, 2, rows)})
    roles = guess_roles(frame)
    role, hist, why = roles['hist']
    assert role == 'sequence' and hist.embedding_name == 'item_id' and hist.max_length == 5
    assert 'shares that table' in why
    role, user, why = roles['user_id']
    assert role == 'sparse' and (user.min_frequency, user.num_oov_buckets) == (2, 10)
    assert '100% of them seen once' in why
    assert roles['device'][1] == SparseFeature('device', embedding_dim=8)
