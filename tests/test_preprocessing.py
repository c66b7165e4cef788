"""preprocessing_fn through TFT's real Beam implementation on a handful of rows."""

import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from pipeline.config import PipelineConfig
from trainer_module.preprocessing import preprocessing_fn

CONFIG = PipelineConfig().with_overrides([
    'sparse_features=[user_id, hour, city]',
    'dense_features=[{name: price, log1p: false}, {name: item_review_count, log1p: true}, '
    '{name: item_rating, log1p: false}]',
    'slice_features=[]', 'drift=[]'])
# VarLen features, as the curated schema declares them (a value may be missing).
RAW_METADATA = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
    'user_id': tf.io.VarLenFeature(tf.string),
    'city': tf.io.VarLenFeature(tf.string),
    'hour': tf.io.VarLenFeature(tf.int64),
    'price': tf.io.VarLenFeature(tf.float32),
    'item_review_count': tf.io.VarLenFeature(tf.int64),
    'item_rating': tf.io.VarLenFeature(tf.float32),
    'click': tf.io.VarLenFeature(tf.int64),
    'purchase': tf.io.VarLenFeature(tf.int64),
}))

pytestmark = pytest.mark.beam


def _row(user, hour, price, reviews=None, click=1, purchase=0, city=b'c1'):
    return {'user_id': [user.encode()] if user is not None else [], 'hour': [hour],
            'city': [city] if city is not None else [],
            'price': [price] if price is not None else [],
            'item_review_count': [reviews] if reviews is not None else [],
            'item_rating': [4.5], 'click': [click], 'purchase': [purchase]}


TRAIN = [_row('u1', 0, 10.0, 0), _row('u1', 0, 20.0, 9), _row('u1', 5, 30.0, 99),
         _row('u2', 5, 40.0), _row('u3', 23, 50.0, 999),
         _row('u2', 5, float('nan'), -5, city=None)]
# The NaN is filled with the mean of the others before scaling.
TRAIN_PRICES = [10.0, 20.0, 30.0, 40.0, 50.0, 30.0]
# log1p of the review counts (a negative count counts as 0); the missing one is filled with the
# mean of the others, after log1p.
TRAIN_LOG_REVIEWS = np.log1p([0, 9, 99, 999, 0])
TRAIN_LOG_REVIEWS = np.append(TRAIN_LOG_REVIEWS, TRAIN_LOG_REVIEWS.mean())


@pytest.fixture(scope='module')
def analyzed(tmp_path_factory):
    """(the transformed serving rows, the TFTransformOutput)."""
    serving = [_row('u1', 0, 30.0, 9), _row('u3', 23, 30.0), _row('never-seen', 7, None),
               _row(None, 0, 30.0, city=None), _row('u1', 0, float('nan'), city=b'c2')]
    output_dir = str(tmp_path_factory.mktemp('transform_output'))
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp('tft'))):
        transform_fn = ((TRAIN, RAW_METADATA) | tft_beam.AnalyzeDataset(
            functools.partial(preprocessing_fn, custom_config=CONFIG.transform_dict())))
        rows, _ = ((serving, RAW_METADATA), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return rows, tft.TFTransformOutput(output_dir)


@pytest.fixture(scope='module')
def transformed(analyzed):
    return analyzed[0]


def test_each_sparse_feature_has_its_vocabulary_by_name_most_frequent_first(analyzed):
    output = analyzed[1]
    assert output.vocabulary_by_name('user_id') == [b'u1', b'u2', b'u3']
    # Ties (0 and 23 would be, were 0 not seen twice) go by token.
    assert output.vocabulary_by_name('hour') == [b'5', b'0', b'23']
    assert output.vocabulary_size_by_name('user_id') == 3


def test_seen_values_get_their_vocabulary_ids(transformed):
    # Ids are positions in the vocabularies, by frequency: user_id [u1, u2, u3], hour [5, 0, 23].
    assert transformed[0]['user_id'] == 0  # u1
    assert transformed[1]['user_id'] == 2  # u3
    assert transformed[0]['hour'] == 1  # 0
    assert transformed[1]['hour'] == 2  # 23


def test_unseen_and_missing_values_get_the_oov_id(transformed):
    vocabulary_size = 3  # u1, u2, u3
    assert transformed[2]['user_id'] == vocabulary_size
    assert transformed[3]['user_id'] == vocabulary_size
    assert transformed[2]['hour'] == 3  # hours 0, 5, 23 seen; 7 is not
    assert all(row['user_id'] >= 0 and row['hour'] >= 0 for row in transformed)


def test_a_missing_category_gets_the_oov_id_even_when_training_has_one(analyzed):
    transformed, output = analyzed
    # One training row has no city; a text vocabulary cannot hold the empty string.
    assert output.vocabulary_by_name('city') == [b'c1']
    assert transformed[3]['city'] == 1  # missing
    assert transformed[4]['city'] == 1  # c2, never seen


def test_dense_values_are_z_scores_and_missing_or_nan_is_the_mean(transformed):
    mean, std = 30.0, np.std(TRAIN_PRICES)
    assert transformed[0]['price'] == pytest.approx((30.0 - mean) / std, abs=1e-5)
    assert transformed[2]['price'] == pytest.approx(0.0, abs=1e-5)  # missing
    assert transformed[4]['price'] == pytest.approx(0.0, abs=1e-5)  # NaN


def test_log1p_features_are_z_scores_of_log1p_and_missing_is_their_mean(transformed):
    mean, std = TRAIN_LOG_REVIEWS.mean(), TRAIN_LOG_REVIEWS.std()
    assert transformed[0]['item_review_count'] == pytest.approx((np.log1p(9) - mean) / std,
                                                                abs=1e-5)
    assert transformed[1]['item_review_count'] == pytest.approx(0.0, abs=1e-5)


def test_a_constant_feature_is_centred_not_divided_by_zero(transformed):
    assert [row['item_rating'] for row in transformed] == [0.0] * 5


def test_labels_pass_through(transformed):
    assert [row['click'] for row in transformed] == [1.0] * 5
    assert [row['purchase'] for row in transformed] == [0.0] * 5
