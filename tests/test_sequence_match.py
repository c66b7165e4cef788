"""A list's match with a categorical feature (`sequence_features[].match`): how often and how
recently the row's value occurs among the list's kept values, computed on the raw strings by the
Transform graph, and the two model inputs it adds."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import ConfigError, PipelineConfig
from trainer_module import features
from trainer_module.features.sequence import _match, match_names
from trainer_module.warm_start import differences

BASE = ['slice_features=[]', 'drift=[]', 'evaluation.group_by=null', 'dense_features=[price]',
        'sparse_features=[item_id, device]']


def _config(*assignments):
    return PipelineConfig().with_overrides([*BASE, *assignments])


def test_the_match_counts_the_rows_value_among_the_kept_values_and_how_recent_it_is():
    kept = tf.ragged.constant([['a', 'b', 'a', 'c'], [], ['x'], ['', 'c'], ['d', 'e', 'f']])
    targets = tf.constant(['a', 'a', 'y', '', 'd'])
    count, recency = (values.numpy() for values in _match(kept, targets))
    np.testing.assert_allclose(count, [math.log1p(2), 0, 0, 0, math.log1p(1)], rtol=1e-6)
    # The latest 'a' is one value before the last; 'd' is two before the last.
    np.testing.assert_allclose(recency, [1 / 2, 0, 0, 0, 1 / 3], rtol=1e-6)
    # A missing value ('') matches nothing, not even an empty value between two separators.
    assert count[3] == 0 and recency[3] == 0


def test_a_list_with_a_match_outputs_and_feeds_two_numbers():
    config = _config('sequence_features=[{name: hist, embedding_name: item_id, match: item_id}]')
    settings = config.trainer_settings()
    assert match_names('hist') == ('hist_matches', 'hist_match_recency')
    assert ('hist_matches', 'hist') in features.outputs(settings)
    assert ('hist_match_recency', 'hist') in features.outputs(settings)
    list_kind = features.kind_of(settings.sequence_features[0])
    columns = list_kind.model_columns(settings.sequence_features[0],
                                      features.features_by_name(settings), {'item_id': 10})
    assert [type(column).__name__ for column in columns] == ['VarLenSparseFeat', 'DenseFeat',
                                                            'DenseFeat']
    assert [column.name for column in columns[1:]] == list(match_names('hist'))


@pytest.mark.parametrize('assignments, message', [
    (['sequence_features=[{name: hist, match: price}]'],
     "sequence_features.hist.match: 'price' is not a categorical feature"),
    (['sequence_features=[{name: hist, match: shop}]'],
     "sequence_features.hist.match: 'shop' is not a categorical feature"),
    (['sparse_features=[item_id, hist_matches]', 'sequence_features=[{name: hist, match: item_id}]'],
     "'hist_matches': a column of the data, and the name of a feature that 'hist' outputs"),
])
def test_a_bad_match_is_refused_naming_its_key(assignments, message):
    with pytest.raises(ConfigError, match=message):
        _config(*assignments)


def test_warm_start_refuses_a_base_model_without_the_match():
    settings = _config('sequence_features=[{name: hist, embedding_name: item_id, '
                       'match: item_id}]').trainer_settings()
    base = dataclasses.replace(settings, sequence_features=(dataclasses.replace(
        settings.sequence_features[0], match=None),))
    assert differences(base, settings) == [
        "the serving model has sequence_features.hist.match None, this config 'item_id'"]
