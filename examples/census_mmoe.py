"""MMOE on the census-income sample, written the way a DeepCTR user writes it.

Two tasks from one table (does a person earn over $50k; were they never married), label-encoded
categorical columns, min-max scaled numbers, DeepCTR's feature columns and `MMOE`, Keras' `fit` on a
dict of pandas columns with a validation split, then `predict` and AUCs on held-out rows. The same
script runs under DeepCTR 0.9.4 with its two `trainer_module` imports read as `deepctr`
(tests/test_drop_in.py runs it both ways).

    .venv/bin/python examples/census_mmoe.py [census-income.sample]

The data: the UCI census-income (KDD) file's layout, a row id first (the sample that DeepCTR's
examples ship; default: ../shared/data/census-income.sample beside the project).
"""

import os
import sys

import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder, MinMaxScaler

from pipeline.datasets.census import COLUMNS, DENSE
from trainer_module.feature_column import DenseFeat, SparseFeat, get_feature_names
from trainer_module.models import MMOE

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(PROJECT_DIR, '..', 'shared', 'data', 'census-income.sample')

if __name__ == '__main__':
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DATA
    if not os.path.exists(path):
        sys.exit(f'{path}: no such file; give the census-income sample as the argument')
    data = pd.read_csv(path, header=None, names=('row_id',) + COLUMNS, index_col='row_id',
                       skipinitialspace=True)

    # 1. The two labels, then label-encoded categories and scaled numbers.
    data['label_income'] = (data['income_50k'] == '50000+.').astype(int)
    data['label_marital'] = (data['marital_stat'] == 'Never married').astype(int)
    data = data.drop(columns=['income_50k', 'marital_stat', 'instance_weight'])
    dense_features = list(DENSE)
    sparse_features = [column for column in data.columns
                       if column not in dense_features + ['label_income', 'label_marital']]
    data[sparse_features] = data[sparse_features].fillna('-1').astype(str)
    data[dense_features] = data[dense_features].fillna(0)
    for feature in sparse_features:
        data[feature] = LabelEncoder().fit_transform(data[feature])
    data[dense_features] = MinMaxScaler(feature_range=(0, 1)).fit_transform(data[dense_features])

    # 2. Feature columns and the model's input names.
    feature_columns = ([SparseFeat(feature, vocabulary_size=data[feature].max() + 1,
                                   embedding_dim=4) for feature in sparse_features]
                       + [DenseFeat(feature, 1) for feature in dense_features])
    feature_names = get_feature_names(feature_columns)

    # 3. Train on 80% of the rows (20% of those for validation), predict the rest.
    train, test = train_test_split(data, test_size=0.2, random_state=2020)
    train_input = {name: train[name] for name in feature_names}
    test_input = {name: test[name] for name in feature_names}
    task_names = ['label_income', 'label_marital']

    model = MMOE(feature_columns, tower_dnn_hidden_units=[], task_types=['binary', 'binary'],
                 task_names=task_names)
    model.compile('adam', loss=['binary_crossentropy', 'binary_crossentropy'],
                  metrics=['binary_crossentropy'])
    history = model.fit(train_input, [train[name].values for name in task_names],
                        batch_size=32, epochs=10, verbose=2, validation_split=0.2)
    predictions = model.predict(test_input, batch_size=256)
    for name, predicted in zip(task_names, predictions):
        if test[name].nunique() == 2:
            print(f'{name} test AUC {roc_auc_score(test[name], predicted):.4f}')
        else:
            print(f'{name}: one class only among the {len(test)} test rows, no AUC')
