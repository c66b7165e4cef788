"""MMOE on the movielens sample, with a multi-value and a hashed column, as a DeepCTR user writes it.

Two tasks from one table: does a user like a movie (rating 4 or more: binary) and the rating itself
(regression). Label-encoded ids; `genres`, a `|`-separated list of a movie's genres, as a
variable-length feature, mean-pooled (DeepCTR's multi-value movielens example: a `key2index` of its
own, `pad_sequences`); `zip` hashed from its strings (`use_hash=True`, its hash example); DeepCTR's
feature columns and `MMOE`, Keras' `fit` on a dict of columns with a validation split, then
`predict`, an AUC and a mean squared error on held-out rows. The same script runs under DeepCTR
0.9.4 with its two `trainer_module` imports read as `deepctr` (and TF_USE_LEGACY_KERAS=1 in the
environment, which importing `trainer_module` sets).

    .venv/bin/python examples/movielens_mmoe.py [movielens_sample.txt]

The data: DeepCTR's `movielens_sample.txt` layout (a header row; user_id, movie_id, rating,
timestamp, title, genres, gender, age, occupation, zip; default: ../shared/data/movielens_sample.txt
beside the project). Where the file is absent the script draws 2,000 rows of that layout, with
ratings that depend on the genres, gender and age, and says so.
"""

import os
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from tf_keras.preprocessing.sequence import pad_sequences

from trainer_module.feature_column import SparseFeat, VarLenSparseFeat, get_feature_names
from trainer_module.models import MMOE

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(PROJECT_DIR, '..', 'shared', 'data', 'movielens_sample.txt')
GENRES = ('Action', 'Adventure', 'Animation', "Children's", 'Comedy', 'Crime', 'Documentary',
          'Drama', 'Fantasy', 'Film-Noir', 'Horror', 'Musical', 'Mystery', 'Romance', 'Sci-Fi',
          'Thriller', 'War', 'Western')


def movielens_rows(rows, seed=0):
    """`rows` ratings in the sample's layout: 100 users, 100 movies of one to three genres, a rating
    from 1 to 5 that rises with the movie's genres' appeal (to everyone, and to the user's gender and
    age group) and with a taste of the user's own."""
    rng = np.random.default_rng(seed)
    users, movies = 100, 100
    gender = rng.choice(['F', 'M'], users, p=[0.3, 0.7])
    age = rng.choice([1, 18, 25, 35, 45, 50, 56], users)
    occupation = rng.integers(0, 21, users)
    zip_code = np.array([f'{z:05d}' if z % 7 else f'{z:05d}-{z % 9999:04d}'
                         for z in rng.integers(0, 100000, users)])
    movie_genres = [sorted(rng.choice(len(GENRES), rng.integers(1, 4), replace=False))
                    for _ in range(movies)]
    # Per gender x age group x genre: the genre's appeal to all, and to the group.
    appeal = rng.normal(0.0, 1.0, len(GENRES)) + rng.normal(0.0, 0.5, (2, 7, len(GENRES)))
    taste = rng.normal(0.0, 0.5, users)
    user = rng.integers(0, users, rows)
    movie = rng.integers(0, movies, rows)
    age_group = np.searchsorted([1, 18, 25, 35, 45, 50, 56], age[user])
    score = np.array([appeal[int(g == 'M'), a, movie_genres[m]].mean()
                      for g, a, m in zip(gender[user], age_group, movie)])
    rating = np.clip(np.round(3.3 + score + taste[user] + rng.normal(0.0, 0.5, rows)), 1, 5)
    return pd.DataFrame({
        'user_id': user + 1, 'movie_id': movie + 1, 'rating': rating.astype(int),
        'timestamp': rng.integers(956_000_000, 1_040_000_000, rows),
        'title': [f'Movie {m + 1} (19{60 + m % 40})' for m in movie],
        'genres': ['|'.join(GENRES[g] for g in movie_genres[m]) for m in movie],
        'gender': gender[user], 'age': age[user], 'occupation': occupation[user],
        'zip': zip_code[user]})


def split(x, key2index):
    """A `|`-separated list of genres as their ids in `key2index`, where new genres are numbered as
    they come (0 is the padding)."""
    key_ans = x.split('|')
    for key in key_ans:
        if key not in key2index:
            key2index[key] = len(key2index) + 1
    return [key2index[key] for key in key_ans]


if __name__ == '__main__':
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DATA
    if os.path.exists(path):
        data = pd.read_csv(path, dtype={'zip': str})
    else:
        print(f'{path}: no such file; 2,000 rows of its layout drawn at random instead')
        data = movielens_rows(2000)

    # 1. The two labels, label-encoded ids, the genres as padded lists of ids, zip as a string.
    data['like'] = (data['rating'] >= 4).astype(int)
    data['rating'] = data['rating'].astype(float)
    sparse_features = ['movie_id', 'user_id', 'gender', 'age', 'occupation']
    for feature in sparse_features:
        data[feature] = LabelEncoder().fit_transform(data[feature])
    data['zip'] = data['zip'].astype(str)
    key2index = {}
    genres_list = [split(x, key2index) for x in data['genres'].values]
    max_len = max(map(len, genres_list))
    genres = pad_sequences(genres_list, maxlen=max_len, padding='post')

    # 2. Feature columns and the model's input names.
    feature_columns = ([SparseFeat(feature, vocabulary_size=data[feature].max() + 1, embedding_dim=4)
                        for feature in sparse_features]
                       + [SparseFeat('zip', vocabulary_size=data['zip'].nunique() * 5,
                                     embedding_dim=4, use_hash=True, dtype='string'),
                          VarLenSparseFeat(SparseFeat('genres', vocabulary_size=len(key2index) + 1,
                                                      embedding_dim=4),
                                           maxlen=max_len, combiner='mean')])
    feature_names = get_feature_names(feature_columns)

    # 3. Train on 80% of the rows (20% of those for validation), predict the rest.
    train, test = train_test_split(np.arange(len(data)), test_size=0.2, random_state=2020)
    model_input = {name: data[name].values for name in feature_names if name != 'genres'}
    model_input['genres'] = genres
    train_input = {name: values[train] for name, values in model_input.items()}
    test_input = {name: values[test] for name, values in model_input.items()}
    task_names = ['like', 'rating']

    model = MMOE(feature_columns, tower_dnn_hidden_units=[], task_types=['binary', 'regression'],
                 task_names=task_names)
    model.compile('adam', loss=['binary_crossentropy', 'mse'])
    history = model.fit(train_input, [data[name].values[train] for name in task_names],
                        batch_size=32, epochs=10, verbose=2, validation_split=0.2)
    predictions = model.predict(test_input, batch_size=256)
    like, rating = data['like'].values[test], data['rating'].values[test]
    if len(set(like)) == 2:
        print(f'like test AUC {roc_auc_score(like, predictions[0]):.4f}')
    else:
        print(f'like: one class only among the {len(test)} test rows, no AUC')
    baseline = np.full(len(test), data['rating'].values[train].mean())
    print(f'rating test MSE {mean_squared_error(rating, predictions[1]):.4f} '
          f'(the training mean: {mean_squared_error(rating, baseline):.4f})')
