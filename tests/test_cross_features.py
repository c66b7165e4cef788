"""Feature crosses (trainer_module/features/cross.py): their config checks, that the data's
columns, slices and the draft leave them out, and warm start's differences. Their Transform and
the exported model's raw signature are tested with the other kinds', on the same few rows
(tests/test_features.py)."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from pipeline.config import ConfigError, PipelineConfig
from pipeline.draft import draft_config, guess_roles
from trainer_module import features
from trainer_module.features import CrossFeature
from trainer_module.warm_start import differences

BASE = ['slice_features=[]', 'drift=[]', 'evaluation.group_by=null', 'dense_features=[price]',
        'sparse_features=[user_age, category_id, hour]']
CROSS = '{name: age_x_category, columns: [user_age, category_id], hash_buckets: 1000}'


def _config(*assignments):
    return PipelineConfig().with_overrides([*BASE, *assignments])


@pytest.mark.parametrize('cross, message', [
    ('{name: x, columns: [user_age, city]}',
     "cross_features.x.columns: 'city' is not a feature of the config (sparse_features: "
     "['user_age', 'category_id', 'hour'])"),
    ('{name: x, columns: [user_age, price]}',
     "cross_features.x.columns: 'price' is not a categorical feature"),
    ('{name: x, columns: [user_age]}',
     "cross_features.x.columns: a cross combines at least 2 categorical features, got "
     "['user_age']"),
    ('{name: x, columns: user_age}',
     "cross_features.x.columns: expected a list of categorical features"),
    ('{name: x, columns: [hour, hour]}', "cross_features.x.columns: 'hour' named twice"),
    ('{name: x, columns: [user_age, hour], hash_buckets: 0}',
     'cross_features.x.hash_buckets: must be a whole number, at least 1, got 0'),
    ('{name: x, columns: [user_age, hour], embedding_dim: 0}',
     'cross_features.x.embedding_dim: must be a whole number, at least 1'),
    ('{name: x, columns: [user_age, hour], hash_buckets: 10, top_k: 5}',
     'cross_features.x.top_k: a hashed feature (hash_buckets) has no vocabulary'),
    ('{name: hour, columns: [user_age, category_id]}',
     'cross_features.hour: the name of a column of the data (a feature or a label)'),
    ('{name: click, columns: [user_age, category_id]}',
     'cross_features.click: the name of a column of the data'),
    ('{name: x, columns: [user_age, hour]}, {name: x, columns: [hour, category_id]}',
     'cross_features.x: named twice'),
    ('{name: x, columns: [user_age, hour], buckets: 3}',
     "cross_features[0]: CrossFeature.__init__() got an unexpected keyword argument 'buckets'"),
])
def test_a_bad_cross_is_refused_naming_its_key(cross, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _config(f'cross_features=[{cross}]')


def test_a_cross_is_no_column_of_the_data_and_no_slice():
    config = _config(f'cross_features=[{CROSS}]')
    assert features.columns(config) == ['user_age', 'category_id', 'hour', 'price']
    assert [name for name, _ in features.outputs(config)] == [
        'user_age', 'category_id', 'hour', 'age_x_category', 'price']
    assert features.separators(config) == {}
    with pytest.raises(ConfigError, match=r"slice_features: \['age_x_category'\] are not columns"):
        _config(f'cross_features=[{CROSS}]', 'slice_features=[age_x_category]')
    # The settings travel to the Trainer and back through JSON as they were.
    settings = config.trainer_settings()
    assert settings.cross_features == (CrossFeature('age_x_category', ('user_age', 'category_id'),
                                                    hash_buckets=1000),)
    assert type(settings).from_dict(settings.to_dict()) == settings


def test_the_draft_guesses_no_cross():
    frame = pd.DataFrame({'a': ['x', 'y'] * 10, 'b': np.linspace(0, 1, 20), 'c': list(range(20)),
                          'click': [0, 1] * 10, 'buy': [0, 0, 1, 1] * 5})
    roles = guess_roles(frame)
    assert {name: role for name, (role, _, _) in roles.items()} == {
        'a': 'sparse', 'b': 'dense', 'c': 'sparse', 'click': 'binary_label', 'buy': 'binary_label'}
    config = draft_config(frame, roles, '/data', '/schema.pbtxt', 'drafted')
    assert config.cross_features == ()


def test_warm_start_refuses_a_cross_of_other_columns():
    settings = _config(f'cross_features=[{CROSS}]').trainer_settings()
    other = dataclasses.replace(settings, cross_features=(dataclasses.replace(
        settings.cross_features[0], columns=('user_age', 'hour')),))
    assert differences(settings, other) == [
        "the serving model has cross_features.age_x_category.columns ('user_age', 'category_id'), "
        "this config ('user_age', 'hour')"]
