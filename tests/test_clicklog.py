"""The click-log generator: determinism, the labels' funnel, the histories' format, the Zipf shapes,
the Bayes AUC, the history's share of the signal and the days' span folders."""

import filecmp
import json
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from pipeline.datasets import clicklog

ROWS = 20000


@pytest.fixture(scope='module')
def generated():
    return clicklog.generate(ROWS, seed=3)


def history(column):
    """Each row's list of ids."""
    return [value.split(clicklog.SEPARATOR) if value else [] for value in column]


def test_the_same_seed_and_day_give_the_same_rows(generated):
    frame, probabilities = clicklog.generate(ROWS, seed=3)
    pd.testing.assert_frame_equal(frame, generated[0])
    for task in clicklog.TASK_LABELS:
        np.testing.assert_array_equal(probabilities[task], generated[1][task])
    for other in (clicklog.generate(ROWS, seed=4)[0], clicklog.generate(ROWS, seed=3, day=1)[0]):
        assert not other['hist_item_ids'].equals(frame['hist_item_ids'])


def test_the_written_csv_reads_back_as_generated(generated, tmp_path):
    report = clicklog.write(str(tmp_path), ROWS, seed=3)
    read = pd.read_csv(tmp_path / clicklog.CSV_NAME, keep_default_na=False,
                       dtype={name: str for name in clicklog.SEQUENCE_COLUMNS})
    pd.testing.assert_frame_equal(read, generated[0], check_dtype=False)
    with open(tmp_path / clicklog.BAYES_AUC_NAME) as f:
        assert json.load(f) == report
    clicklog.write(str(tmp_path / 'again'), ROWS, seed=3)
    assert filecmp.cmp(tmp_path / clicklog.CSV_NAME, tmp_path / 'again' / clicklog.CSV_NAME,
                       shallow=False)


def test_a_purchase_only_follows_a_click(generated):
    frame, probabilities = generated
    assert (frame['purchase'] <= frame['click']).all()
    assert 0 < frame['purchase'].sum() < frame['click'].sum() < len(frame)
    assert (probabilities['ctcvr'] <= probabilities['ctr']).all()


def test_histories_are_aligned_lists_of_ids_most_recent_last(generated):
    frame = generated[0]
    items, categories = history(frame['hist_item_ids']), history(frame['hist_categories'])
    lengths = np.array([len(row) for row in items])
    assert lengths.min() == 0 and lengths.max() == clicklog.MAX_HISTORY
    assert 0.01 < (lengths == 0).mean() < 0.1 and 15 < lengths.mean() < 40
    assert [len(row) for row in categories] == lengths.tolist()
    # Every id has the form of its sparse column's ids, and an item has one category everywhere.
    item_category = dict(zip(frame['item_id'], frame['item_category']))
    for item_row, category_row in zip(items, categories):
        for item, category in zip(item_row, category_row):
            assert item_category.setdefault(item, category) == category
    tokens = pd.Series([item for row in items for item in row])
    assert tokens.str.fullmatch(r'i\d{6}').all() and frame['item_id'].str.fullmatch(r'i\d{6}').all()
    # A user's history grows by their latest entries: of two rows of a user, the shorter history
    # is the start of the longer one.
    by_user = frame.assign(items=frame['hist_item_ids'], n=lengths).sort_values(['user_id', 'n'])
    pairs = by_user.groupby('user_id')['items'].agg(list)
    repeated = pairs[pairs.map(len) > 1]
    assert len(repeated) > 100
    for rows in repeated:
        assert all(longer.startswith(shorter) for shorter, longer in zip(rows, rows[1:]))


def test_users_and_items_follow_zipf_shapes(generated):
    frame = generated[0]
    per_user = frame['user_id'].value_counts()
    assert (per_user == 1).mean() > 0.5
    assert per_user.iloc[0] > 50
    per_item = frame['item_id'].value_counts()
    assert frame['item_id'].nunique() > ROWS / 4 and (per_item == 1).mean() > 0.5
    assert per_item.iloc[:100].sum() > 0.05 * ROWS
    assert 100 < frame['item_category'].nunique() <= clicklog.NUM_CATEGORIES
    assert set(frame['device']) == set(clicklog.DEVICES)
    price = frame['price']
    assert price.min() > 0 and price.quantile(0.99) > 10 * price.median()


def test_the_bayes_auc_is_the_stated_one(generated):
    report = clicklog.bayes_auc(*generated)
    assert 0.75 < report['ctr']['expected'] < 0.81
    assert 0.82 < report['ctcvr']['expected'] < 0.88
    assert 0.08 < report['ctr']['positive_rate'] < 0.2 and 0.02 < report['ctcvr']['positive_rate']
    for task in clicklog.TASK_LABELS:
        assert abs(report[task]['expected'] - report[task]['on_sample']) < 0.03


def test_the_bayes_auc_of_a_subset(generated):
    frame, probabilities = generated
    half = np.arange(ROWS) % 2 == 0
    report = clicklog.bayes_auc(frame[half], {task: p[half] for task, p in probabilities.items()})
    assert abs(report['ctr']['expected'] - clicklog.bayes_auc(*generated)['ctr']['expected']) < 0.02


def match_features(frame):
    """Per row: the share of the history in the target's category, that share among the last five
    entries, and whether the target item is in the history."""
    columns = []
    for items, categories, item, category in zip(history(frame['hist_item_ids']),
                                                 history(frame['hist_categories']),
                                                 frame['item_id'], frame['item_category']):
        recent = categories[-5:]
        columns.append((categories.count(category) / max(len(categories), 1),
                        recent.count(category) / max(len(recent), 1), float(item in items)))
    return np.array(columns)


def test_the_history_carries_most_of_the_signal(generated):
    frame = generated[0]
    without = np.column_stack([np.log(frame['price']), np.log1p(frame['item_review_count']),
                               pd.get_dummies(frame['device']).to_numpy(dtype=float)])
    with_history = np.column_stack([without, match_features(frame)])
    train = np.arange(ROWS) < ROWS // 2
    aucs = {}
    for name, x in (('without', without), ('with', with_history)):
        model = LogisticRegression(max_iter=1000).fit(x[train], frame['click'][train])
        aucs[name] = roc_auc_score(frame['click'][~train], model.predict_proba(x[~train])[:, 1])
    assert aucs['without'] < 0.65 and aucs['with'] > aucs['without'] + 0.1


def test_item_popularity_drifts_with_the_day_over_one_catalogue():
    day0, day60 = clicklog.generate(ROWS, seed=3)[0], clicklog.generate(ROWS, seed=3, day=60)[0]
    # The catalogue is the seed's: an item keeps its category and price from one day to the next.
    items = day0.drop_duplicates('item_id').merge(day60.drop_duplicates('item_id'), on='item_id')
    assert len(items) > 1000
    assert (items['item_category_x'] == items['item_category_y']).all()
    assert (items['price_x'] == items['price_y']).all()
    # Its popularity drifts: the most shown items of day 0 are shown less often on day 60.
    top = day0['item_id'].value_counts().index[:200]
    assert day60['item_id'].isin(top).sum() < 0.9 * day0['item_id'].isin(top).sum()


def test_a_day_is_a_non_negative_integer():
    with pytest.raises(ValueError, match='day'):
        clicklog.generate(10, day=-1)
    with pytest.raises(ValueError, match='day'):
        clicklog.generate(10, day=0.5)


def test_days_are_written_a_span_folder_each(tmp_path):
    reports = clicklog.write_days(str(tmp_path), days=3, rows_per_day=200, seed=3, first_day=1)
    assert sorted(reports) == [1, 2, 3]
    frames = {}
    for day in (1, 2, 3):
        folder = tmp_path / f'span-{day}'
        with open(folder / clicklog.BAYES_AUC_NAME) as f:
            assert json.load(f) == reports[day] and reports[day]['day'] == day
        frames[day] = pd.read_csv(folder / clicklog.CSV_NAME, keep_default_na=False,
                                  dtype={name: str for name in clicklog.SEQUENCE_COLUMNS})
        pd.testing.assert_frame_equal(frames[day], clicklog.generate(200, seed=3, day=day)[0],
                                      check_dtype=False)
    assert sorted(os.listdir(tmp_path)) == ['span-1', 'span-2', 'span-3']
    assert not frames[1].equals(frames[2]) and not frames[2].equals(frames[3])
    # One catalogue, its item popularity another on each day.
    catalogue = clicklog._Catalogue(3)  # pylint: disable=protected-access
    popularity = [catalogue.on_day(day)[0] for day in (1, 2, 3)]
    assert not np.allclose(popularity[0], popularity[1])
    assert not np.allclose(popularity[1], popularity[2])
