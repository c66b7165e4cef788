"""Synthetic e-commerce funnel in the shape of Ali-CCP, the data behind DeepCTR's `ctr`/`ctcvr` tasks.

Every row is an impression of an item to a user. A click is drawn from a known probability, and a
purchase can only follow a click, so `purchase = click AND conversion` (the `ctcvr` label). Because the
probabilities are known, the generator also reports the Bayes AUC of each task: the AUC of the true
probability, which no model can beat on this data.

    python -m pipeline.datasets.ecommerce --rows 20000 --out data/ecommerce

`--extra-sparse N --extra-dense M` widen the rows with N categorical and M numeric columns that the
labels do not depend on (`extra_s00`, ..., `extra_d00`, ...; drawn from their own random stream, so
the other columns and the Bayes AUCs stay those of the narrow data): the benches' width axis.
"""

import argparse
import json
import os

import numpy as np
import pandas as pd

CSV_NAME = 'ecommerce.csv'
BAYES_AUC_NAME = 'bayes_auc.json'

# Column roles of the generated CSV; the default pipeline config is built from these.
SPARSE_COLUMNS = ('user_id', 'item_id', 'category_id', 'shop_id', 'city', 'device', 'hour',
                  'user_gender', 'user_age')
DENSE_COLUMNS = ('price', 'user_click_count', 'user_purchase_count', 'item_rating',
                 'item_review_count')
HEAVY_TAILED_COLUMNS = ('price', 'user_click_count', 'user_purchase_count', 'item_review_count')
TASK_LABELS = {'ctr': 'click', 'ctcvr': 'purchase'}

NUM_USERS = 5000
NUM_ITEMS = 2000
NUM_CATEGORIES = 40
NUM_SHOPS = 400
NUM_CITIES = 50
DEVICES = ('ios', 'android', 'pc', 'h5')
DEVICE_CLICK_EFFECT = np.array([0.3, 0.0, -0.4, -0.6])
DEVICE_CONVERSION_EFFECT = np.array([0.3, 0.0, 0.2, -0.5])
GENDERS = ('F', 'M', 'U')
AGES = ('<18', '18-24', '25-34', '35-44', '45-54', '55-64', '65+')


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _zipf_weights(n, exponent, rng):
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    rng.shuffle(weights)
    return weights / weights.sum()


def expected_auc(probabilities):
    """AUC of `probabilities` as scores when each row is positive with exactly that probability.

    Every pair (i, j) counts with weight p_i * (1 - p_j); ties count half.
    """
    values, index = np.unique(probabilities, return_inverse=True)
    positive = np.bincount(index, weights=probabilities, minlength=len(values))
    negative = np.bincount(index, weights=1.0 - probabilities, minlength=len(values))
    negative_below = np.cumsum(negative) - negative
    wins = (positive * (negative_below + 0.5 * negative)).sum()
    return float(wins / (positive.sum() * negative.sum()))


def sample_auc(scores, labels):
    """Mann-Whitney AUC of `scores` against 0/1 `labels` (ties count half)."""
    ranks = pd.Series(scores).rank(method='average').to_numpy()
    num_pos = int(labels.sum())
    num_neg = len(labels) - num_pos
    if num_pos == 0 or num_neg == 0:
        return float('nan')
    return float((ranks[labels == 1].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))


def extra_columns(rows, sparse, dense, seed):
    """`sparse` categorical columns (Zipf over 20 to 2,000 values) and `dense` numeric ones (some
    heavy-tailed, 5% missing), independent of everything else."""
    rng = np.random.default_rng([seed, 1])
    columns = {}
    for i in range(sparse):
        values = int(20 * 100 ** (i / max(sparse - 1, 1)))
        drawn = rng.choice(values, rows, p=_zipf_weights(values, 1.0, rng))
        columns[f'extra_s{i:02d}'] = np.char.add(f's{i}_', drawn.astype(str))
    for i in range(dense):
        drawn = rng.lognormal(1.0, 1.0, rows) if i % 3 == 0 else rng.normal(0.0, 1.0, rows)
        drawn[rng.random(rows) < 0.05] = np.nan
        columns[f'extra_d{i:02d}'] = np.round(drawn, 3)
    return columns


def generate(rows, seed=7, extra_sparse=0, extra_dense=0):
    """Returns (DataFrame of `rows` impressions, {task: true probability per row}); see
    `extra_columns` for the widening."""
    rng = np.random.default_rng(seed)

    # Users: an activity level (clicks more) and a purchase propensity, partly correlated.
    user_activity = rng.normal(0.0, 0.6, NUM_USERS)
    user_propensity = 0.5 * user_activity + rng.normal(0.0, 0.5, NUM_USERS)
    user_age = rng.choice(len(AGES), NUM_USERS, p=[.05, .2, .3, .2, .12, .08, .05])
    user_gender = rng.choice(len(GENDERS), NUM_USERS, p=[.48, .47, .05])
    user_city = rng.choice(NUM_CITIES, NUM_USERS, p=_zipf_weights(NUM_CITIES, 1.0, rng))
    user_clicks = rng.poisson(np.exp(2.0 + user_activity))
    user_purchases = rng.poisson(np.exp(0.5 + user_propensity))

    # Items: a category, a shop, a hidden quality, a price; rating and reviews are noisy views of
    # quality.
    item_category = rng.choice(NUM_CATEGORIES, NUM_ITEMS, p=_zipf_weights(NUM_CATEGORIES, 0.8, rng))
    item_shop = rng.choice(NUM_SHOPS, NUM_ITEMS, p=_zipf_weights(NUM_SHOPS, 1.0, rng))
    item_quality = rng.normal(0.0, 0.6, NUM_ITEMS)
    category_log_price = rng.normal(3.5, 1.0, NUM_CATEGORIES)
    item_log_price = category_log_price[item_category] + rng.normal(0.0, 0.5, NUM_ITEMS)
    item_rating = np.clip(3.6 + item_quality + rng.normal(0.0, 0.4, NUM_ITEMS), 1.0, 5.0)
    item_reviews = rng.poisson(np.exp(2.5 + 0.8 * item_quality))
    age_category_affinity = rng.normal(0.0, 0.7, (len(AGES), NUM_CATEGORIES))

    # Impressions: active users and popular items are seen more often.
    user = rng.choice(NUM_USERS, rows, p=_sigmoid(user_activity) / _sigmoid(user_activity).sum())
    item = rng.choice(NUM_ITEMS, rows, p=_zipf_weights(NUM_ITEMS, 0.7, rng))
    device = rng.choice(len(DEVICES), rows, p=[.35, .4, .15, .1])
    hour = rng.choice(24, rows)
    hour_effect = 0.4 * np.sin((hour - 14) / 24 * 2 * np.pi)
    log_price = item_log_price[item]
    relative_price = log_price - category_log_price[item_category[item]]

    click_logit = (-1.6 + 0.9 * user_activity[user] + item_quality[item]
                   + age_category_affinity[user_age[user], item_category[item]]
                   + DEVICE_CLICK_EFFECT[device] + hour_effect - 0.3 * relative_price)
    conversion_logit = (-0.9 + 1.2 * user_propensity[user] + 0.8 * item_quality[item]
                        - 0.8 * relative_price - 0.2 * (log_price - 3.5)
                        + DEVICE_CONVERSION_EFFECT[device])
    p_click = _sigmoid(click_logit)
    p_purchase = p_click * _sigmoid(conversion_logit)
    click = rng.random(rows) < p_click
    # Conversion is drawn for every row but only counts after a click.
    purchase = click & (rng.random(rows) < p_purchase / p_click)

    frame = pd.DataFrame({
        'user_id': np.char.add('u', np.char.zfill(user.astype(str), 5)),
        'item_id': np.char.add('i', np.char.zfill(item.astype(str), 5)),
        'category_id': np.char.add('c', np.char.zfill(item_category[item].astype(str), 3)),
        'shop_id': np.char.add('s', np.char.zfill(item_shop[item].astype(str), 4)),
        'city': np.char.add('city', np.char.zfill(user_city[user].astype(str), 2)),
        'device': np.array(DEVICES)[device],
        'hour': hour,
        'user_gender': np.array(GENDERS)[user_gender[user]],
        'user_age': np.array(AGES)[user_age[user]],
        'price': np.round(np.exp(log_price), 2),
        'user_click_count': user_clicks[user],
        'user_purchase_count': user_purchases[user],
        'item_rating': np.round(item_rating[item], 1),
        'item_review_count': item_reviews[item],
        **extra_columns(rows, extra_sparse, extra_dense, seed),
        'click': click.astype(int),
        'purchase': purchase.astype(int),
    })
    return frame, {'ctr': p_click, 'ctcvr': p_purchase}


def bayes_auc(frame, probabilities):
    """Per task: the expected AUC of the true probability, and its AUC on these very rows."""
    return {
        task: {
            'expected': round(expected_auc(probabilities[task]), 4),
            'on_sample': round(sample_auc(probabilities[task], frame[label].to_numpy()), 4),
            'positive_rate': round(float(frame[label].mean()), 4),
        }
        for task, label in TASK_LABELS.items()
    }


def write(out_dir, rows, seed=7, extra_sparse=0, extra_dense=0):
    """Writes `ecommerce.csv` and `bayes_auc.json` into `out_dir`; returns the Bayes AUC report."""
    frame, probabilities = generate(rows, seed, extra_sparse, extra_dense)
    return write_frame(out_dir, CSV_NAME, frame,
                       {'rows': rows, 'seed': seed, 'bayes_auc': bayes_auc(frame, probabilities)})


def write_frame(out_dir, csv_name, frame, report):
    """Writes a generated `frame` as `csv_name` and its Bayes AUC `report` as BAYES_AUC_NAME into
    `out_dir`; returns the report."""
    os.makedirs(out_dir, exist_ok=True)
    frame.to_csv(os.path.join(out_dir, csv_name), index=False)
    with open(os.path.join(out_dir, BAYES_AUC_NAME), 'w') as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write('\n')
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', type=int, default=20000, help='impressions to generate')
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--out', required=True, help='directory for the CSV and bayes_auc.json')
    parser.add_argument('--extra-sparse', type=int, default=0, help='noise categorical columns')
    parser.add_argument('--extra-dense', type=int, default=0, help='noise numeric columns')
    args = parser.parse_args(argv)
    report = write(args.out, args.rows, args.seed, args.extra_sparse, args.extra_dense)
    print(f'wrote {args.rows} rows to {os.path.join(args.out, CSV_NAME)}')
    for task, auc in report['bayes_auc'].items():
        print(f"{task}: positive rate {auc['positive_rate']:.3f}, "
              f"Bayes AUC {auc['expected']:.3f} (on these rows {auc['on_sample']:.3f})")


if __name__ == '__main__':
    main()
