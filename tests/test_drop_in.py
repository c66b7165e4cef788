"""A DeepCTR user's multi-task script runs on our model with only its imports changed:
examples/census_mmoe.py, run as it is and with its `trainer_module` imports read as `deepctr`."""

import os
import runpy
import sys
import warnings

import numpy as np
import pytest

# trainer_module sets TF_USE_LEGACY_KERAS=1 before DeepCTR's import first reads `tf.keras`.
import trainer_module  # noqa: F401
from pipeline.config import PROJECT_DIR
from pipeline.datasets import census

SCRIPT = os.path.join(PROJECT_DIR, 'examples', 'census_mmoe.py')
CENSUS_SAMPLE = os.path.join(PROJECT_DIR, '..', 'shared', 'data', 'census-income.sample')
IMPORTS = {'from trainer_module.feature_column import': 'from deepctr.feature_column import',
           'from trainer_module.models import': 'from deepctr.models import'}


@pytest.fixture(scope='module')
def census_sample(tmp_path_factory):
    """The census-income sample DeepCTR ships (in ../shared/data), or, where it is absent, 200 rows
    of its layout drawn at random: a row id, then the 42 UCI fields."""
    if os.path.exists(CENSUS_SAMPLE):
        return CENSUS_SAMPLE
    # In pytest's warnings summary: the same assertions then hold on data of the sample's layout.
    warnings.warn(f'{CENSUS_SAMPLE} is absent: the script runs on 200 rows of its layout drawn '
                  'at random', stacklevel=2)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(200):
        fields = [str(i)]
        for name in census.COLUMNS:
            if name in census.DENSE or name == 'instance_weight':
                fields.append(str(rng.integers(0, 100)))
            elif name == 'income_50k':
                fields.append('50000+.' if rng.random() < 0.25 else '- 50000.')
            elif name == 'marital_stat':
                fields.append('Never married' if rng.random() < 0.4 else 'Divorced')
            else:
                fields.append(f'{name}-{rng.integers(0, 4)}')
        lines.append(', '.join(fields))
    path = tmp_path_factory.mktemp('census') / 'census-income.sample'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def run_script(tmp_path, package, sample):
    """The script's globals after it ran on the census sample, its imports from `package`."""
    with open(SCRIPT) as f:
        source = f.read()
    if package == 'deepctr':
        for ours, theirs in IMPORTS.items():
            assert source.count(ours) == 1
            source = source.replace(ours, theirs)
    script = tmp_path / f'census_mmoe_{package}.py'
    script.write_text(source)
    argv = sys.argv
    sys.argv = [str(script), sample]
    try:
        return runpy.run_path(str(script), run_name='__main__')
    finally:
        sys.argv = argv


@pytest.mark.parametrize('package', ['trainer_module', 'deepctr'])
def test_deepctr_script_runs_with_its_imports_changed(tmp_path, package, census_sample):
    result = run_script(tmp_path, package, census_sample)
    assert type(result['model']).__module__.startswith('tf_keras')
    assert result['MMOE'].__module__ == f'{package}.models' or (
        package == 'deepctr' and result['MMOE'].__module__.startswith('deepctr.models'))
    history = result['history'].history
    assert len(history['val_loss']) == 10 and history['loss'][-1] < history['loss'][0]
    predictions = result['predictions']
    assert [p.shape for p in predictions] == [(len(result['test']), 1)] * 2
    assert all(np.all((p >= 0) & (p <= 1)) for p in predictions)


# A DeepCTR user's multi-value script, as DeepCTR's docs write one (its movielens multi-value
# examples): genres split on '|' and padded after, a vocabulary of them or their hash, a length
# column, a hashed user id, then MMOE, fit and predict. Run as it is on DeepCTR and on ours.
MULTI_VALUE_SCRIPT = '''
import numpy as np
import pandas as pd

from {package}.feature_column import SparseFeat, VarLenSparseFeat, get_feature_names
from {package}.models import MMOE

rng = np.random.default_rng(0)
GENRES = ['action', 'comedy', 'drama', 'horror', 'kids', 'noir']
rows = 1024
data = pd.DataFrame({{
    'user_id': [f'u{{i}}' for i in rng.integers(0, 50, rows)],
    'movie_id': rng.integers(0, 30, rows),
    'genres': ['|'.join(rng.choice(GENRES, rng.integers(1, 4), replace=False))
               for _ in range(rows)]}})
data['like'] = data['genres'].str.contains('comedy').astype('float32')
data['watch'] = data['genres'].str.contains('horror|noir').astype('float32')

key2index = {{}}
genres_list = [[key2index.setdefault(key, len(key2index) + 1) for key in value.split('|')]
               for value in data['genres']]
max_len = max(len(x) for x in genres_list)
genres_ids = np.array([x + [0] * (max_len - len(x)) for x in genres_list], 'int32')
genres_length = np.array([[len(x)] for x in genres_list], 'int32')
genres_text = np.array([x.split('|') + ['0'] * (max_len - len(x.split('|')))
                        for x in data['genres']], dtype=object).astype(str)

columns = [SparseFeat('user_id', 100, embedding_dim=4, use_hash=True, dtype='string'),
           SparseFeat('movie_id', 30, embedding_dim=4),
           VarLenSparseFeat(SparseFeat('genres', len(key2index) + 1, embedding_dim=4), max_len,
                            'mean', length_name='genres_length'),
           VarLenSparseFeat(SparseFeat('genres_hashed', 20, embedding_dim=4, use_hash=True,
                                       dtype='string'), max_len, 'sum')]
feature_names = get_feature_names(columns)
x = {{'user_id': data['user_id'].values, 'movie_id': data['movie_id'].values,
      'genres': genres_ids, 'genres_length': genres_length, 'genres_hashed': genres_text}}
model = MMOE(columns, expert_dnn_hidden_units=(32,), tower_dnn_hidden_units=(8,),
             task_names=('like', 'watch'))
model.compile('adam', loss=['binary_crossentropy', 'binary_crossentropy'])
history = model.fit({{name: x[name] for name in feature_names}},
                    [data['like'].values, data['watch'].values], batch_size=32, epochs=10,
                    verbose=0)
predictions = model.predict({{name: x[name] for name in feature_names}}, batch_size=256)
'''


@pytest.mark.parametrize('package', ['trainer_module', 'deepctr'])
def test_deepctr_multi_value_script_runs_with_its_imports_changed(package):
    result = {}
    exec(compile(MULTI_VALUE_SCRIPT.format(package=package), f'multi_value_{package}', 'exec'),
         result)
    assert result['feature_names'] == ['user_id', 'movie_id', 'genres', 'genres_length',
                                       'genres_hashed']
    assert result['MMOE'].__module__.startswith(f'{package}.models')
    loss = result['history'].history['loss']
    assert loss[-1] < 0.5 * loss[0]  # the labels are read off the genres
    like, watch = result['predictions']
    data = result['data']
    assert like.shape == watch.shape == (len(data), 1)
    assert np.mean((like[:, 0] > 0.5) == (data['like'] > 0.5)) > 0.9


@pytest.mark.parametrize('name', ['MMOE', 'SharedBottom', 'PLE', 'ESMM'])
def test_every_deepctr_multi_task_model_imports_from_ours_with_its_signature(name):
    """DeepCTR 0.9.4's multi-task models, each from `trainer_module.models` under its name, with
    its arguments in its order and its defaults: a script's calls mean the same on either."""
    import inspect

    from deepctr.models import multitask

    from trainer_module import models

    def parameters(function):
        return [(p.name, p.kind, p.default)
                for p in inspect.signature(function).parameters.values()]

    assert parameters(getattr(models, name)) == parameters(getattr(multitask, name))
