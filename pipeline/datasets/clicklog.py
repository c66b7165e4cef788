"""Synthetic click log with behaviour histories, in the shape of the logs DIN-style models train on.

Every row is an impression of an item to a user, with the user's behaviour history before it: the
items they interacted with and those items' categories, most recent last. Each user has a few latent
interests among the categories and their history is drawn from them; the click probability rises
with how much of the (recent) history shares the target item's category, and more when the target
item itself is in it, so the history carries most of the signal. A model that scores each history
entry against the target (attention) can read that match; mean pooling of the history blurs it; a
model without the history sees only popularity, price and device. Item popularity, a smaller
effect, also drives which items are shown, and drifts slowly with `day`. A purchase can only follow
a click (`purchase = click AND conversion`, the `ctcvr` label). The generator knows every row's
probabilities, so it reports each task's Bayes AUC: the AUC of the true probability, which no model
can beat.

    python -m pipeline.datasets.clicklog --rows 1000000 --seed 7 --out /tmp/clicklog

writes `clicklog.csv` and `bayes_auc.json`;

    python -m pipeline.datasets.clicklog --rows 40000 --days 5 --day 1 --out /tmp/clicklog-days

writes a day per folder, `span-1/` to `span-5/`, each its `clicklog.csv` and `bayes_auc.json`
(`write_days`): data by span for continuous training (`csv_pattern: 'span-{SPAN}/*.csv'`).

`hist_item_ids` and `hist_categories` are `|`-separated lists of 0 to 50 ids (`--max-history`);
an empty history is an empty field (pandas reads it as NaN unless told `keep_default_na=False`).

The catalogue (items, their categories, prices and popularity, and the popularity's drift) depends
on the seed only, so the logs of several days share it. Users are drawn per call: the same
`user_id` in two calls names two different users.
"""

import argparse
import os

import numpy as np
import pandas as pd

from pipeline.datasets.ecommerce import (  # noqa: F401  (BAYES_AUC_NAME: the file write() writes)
    BAYES_AUC_NAME,
    expected_auc,
    sample_auc,
    write_frame,
)

CSV_NAME = 'clicklog.csv'
SEPARATOR = '|'

SPARSE_COLUMNS = ('user_id', 'item_id', 'item_category', 'device')
DENSE_COLUMNS = ('price', 'item_review_count')
# Each history column and the sparse column whose ids (and, in a model, embeddings) it shares.
SEQUENCE_COLUMNS = {'hist_item_ids': 'item_id', 'hist_categories': 'item_category'}
TASK_LABELS = {'ctr': 'click', 'ctcvr': 'purchase'}

NUM_ITEMS = 300_000
NUM_CATEGORIES = 300
MAX_HISTORY = 50
MAX_INTERESTS = 4
DEVICES = ('android', 'ios', 'pc', 'h5')
DEVICE_SHARE = (0.45, 0.35, 0.12, 0.08)
DEVICE_CLICK_EFFECT = np.array([0.0, 0.15, -0.2, -0.35])
DEVICE_CONVERSION_EFFECT = np.array([0.0, 0.25, 0.15, -0.4])

# A history entry drawn off the user's interests (exploration); a target shown from them (the
# recommender's targeting): the rest come by popularity alone.
HISTORY_NOISE = 0.2
TARGETED_SHARE = 0.4
# Recency: the weight of the k-th most recent history entry (k = 0 the latest) is RECENCY ** k.
RECENCY = 0.9
# The standard deviation of an item's log-popularity change per day.
DRIFT_PER_DAY = 0.03


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class _Catalogue:
    """The items, fixed by the seed: category, log-price, base log-popularity and its drift per day;
    draws items of given categories by their popularity on a day."""

    def __init__(self, seed):
        rng = np.random.default_rng([seed, 0])
        category_share = 1.0 / np.arange(1, NUM_CATEGORIES + 1) ** 0.8
        category_share = rng.permutation(category_share / category_share.sum())
        # The first NUM_CATEGORIES items one per category: every category has at least one item.
        self.category = np.concatenate([
            np.arange(NUM_CATEGORIES),
            rng.choice(NUM_CATEGORIES, NUM_ITEMS - NUM_CATEGORIES, p=category_share)])
        self.log_popularity = rng.permutation(-np.log(np.arange(1, NUM_ITEMS + 1)))
        self.drift = rng.normal(0.0, DRIFT_PER_DAY, NUM_ITEMS)
        self.category_log_price = rng.normal(3.3, 1.0, NUM_CATEGORIES)
        self.log_price = self.category_log_price[self.category] + rng.normal(0.0, 0.5, NUM_ITEMS)
        self.review_rate = rng.normal(0.0, 0.5, NUM_ITEMS)
        # Items sorted by category: a category's items are one slice of the sorted order.
        self.order = np.argsort(self.category, kind='stable')
        self.category_start = np.searchsorted(self.category[self.order], np.arange(NUM_CATEGORIES))
        self.category_end = np.append(self.category_start[1:], NUM_ITEMS)

    def on_day(self, day):
        """(log-popularity of every item on `day`, its z-score, the draws' cumulative weights in
        category order, each category's share of the popularity)."""
        log_popularity = self.log_popularity + day * self.drift
        # Against the shown items' log-popularity on day 0: items are shown by popularity.
        shown = np.exp(self.log_popularity) / np.exp(self.log_popularity).sum()
        mean = (shown * self.log_popularity).sum()
        z = (log_popularity - mean) / np.sqrt((shown * (self.log_popularity - mean) ** 2).sum())
        weight = np.exp(log_popularity - log_popularity.max())
        cumulative = np.cumsum(weight[self.order])
        before = np.concatenate([[0.0], cumulative])[self.category_start]
        total = cumulative[self.category_end - 1] - before
        return log_popularity, z, (cumulative, before, total), total / total.sum()

    def draw_items(self, categories, draws, rng):
        """An item of each of `categories`, each by its popularity within its category."""
        cumulative, before, total = draws
        index = np.searchsorted(cumulative,
                                before[categories] + rng.random(len(categories)) * total[categories],
                                side='right')
        index = np.clip(index, self.category_start[categories], self.category_end[categories] - 1)
        return self.order[index]


def _users(rows, rng):
    """(user of each row, the row's index among that user's rows, number of users). The number of
    rows per user follows a Zipf law with exponent 2: about 60% of the users are seen once."""
    counts = np.minimum(rng.zipf(2.0, rows), 200)
    num_users = int(np.searchsorted(np.cumsum(counts), rows)) + 1
    counts = counts[:num_users]
    counts[-1] -= counts.sum() - rows
    user = np.repeat(np.arange(num_users), counts)
    nth = np.arange(rows) - np.repeat(np.cumsum(counts) - counts, counts)
    return user, nth, num_users


def _weighted_choice(weights, rows, rng):
    """For each of `rows` (indices into `weights`, whose rows sum to 1), a column of that row drawn
    with its probabilities; one column at a time, so no [len(rows), columns] array is built."""
    cumulative = np.cumsum(weights, axis=1)
    drawn = rng.random(len(rows))
    chosen = np.zeros(len(rows), dtype=np.int64)
    for column in range(weights.shape[1] - 1):
        chosen += cumulative[rows, column] < drawn
    return chosen


def _id_table(prefix, count, width):
    """[count, width + 1] bytes: row i is '<prefix><i, zero-padded to width>'."""
    ids = np.char.add(prefix, np.char.zfill(np.arange(count).astype(str), width)).astype(f'S{width + 1}')
    return ids.view(np.uint8).reshape(count, width + 1)


def _ids(table, ids):
    """The ids' strings, from their `_id_table`."""
    return table[ids].view(f'S{table.shape[1]}').ravel().astype(str)


def _joined(table, ids, lengths):
    """Per row, its `lengths[row]` consecutive ids of `ids` as '<id>|<id>|...', each id's bytes
    from its `_id_table`.

    Built as one byte buffer of fixed-width tokens, each row a slice of it: joining tens of millions
    of Python strings one by one would take most of the generation time.
    """
    size = table.shape[1] + 1
    tokens = np.full((len(ids), size), ord(SEPARATOR), dtype=np.uint8)
    tokens[:, :-1] = table[ids]
    buffer = tokens.tobytes()
    del tokens
    ends = np.cumsum(lengths) * size
    starts = ends - lengths * size
    return np.array([buffer[a:b - 1].decode('ascii') if b > a else ''
                     for a, b in zip(starts.tolist(), ends.tolist())], dtype=object)


def generate(rows, seed=7, day=0, max_history=MAX_HISTORY):
    """Returns (DataFrame of `rows` impressions on `day`, {task: true probability per row}), each
    history of 0 to `max_history` entries. The same arguments give the same rows; the catalogue
    depends on `seed` only."""
    if day < 0 or int(day) != day:
        raise ValueError(f'day must be a non-negative integer, got {day}')
    if max_history < 1 or int(max_history) != max_history:
        raise ValueError(f'max_history must be a positive integer, got {max_history}')
    catalogue = _Catalogue(seed)
    log_popularity, popularity_z, draws, category_share = catalogue.on_day(int(day))
    rng = np.random.default_rng([seed, 1, int(day)])

    # Users: 1 to 4 interests among the categories (popular categories more often), with weights.
    user, nth, num_users = _users(rows, rng)
    num_interests = np.minimum(1 + rng.poisson(1.0, num_users), MAX_INTERESTS)
    interest = rng.choice(NUM_CATEGORIES, (num_users, MAX_INTERESTS), p=category_share)
    interest_weight = rng.gamma(1.0, 1.0, (num_users, MAX_INTERESTS))
    interest_weight[np.arange(MAX_INTERESTS) >= num_interests[:, None]] = 0.0
    interest_weight /= interest_weight.sum(axis=1, keepdims=True)

    # Each user's behaviour sequence: max_history items, mostly of the user's interests. A row's
    # history is the sequence's first `length` entries: a user's history grows by one entry per
    # impression from a length of their own.
    sequence_user = np.repeat(np.arange(num_users), max_history)
    sequence_category = interest[sequence_user, _weighted_choice(interest_weight, sequence_user, rng)]
    noise = rng.random(len(sequence_user)) < HISTORY_NOISE
    sequence_category[noise] = rng.choice(NUM_CATEGORIES, int(noise.sum()), p=category_share)
    sequence_item = catalogue.draw_items(sequence_category, draws, rng)
    first_length = (max_history * rng.random(num_users) ** 2).astype(np.int64)
    length = np.minimum(first_length[user] + nth, max_history)

    # Targets: some from the user's interests, the rest by popularity.
    targeted = rng.random(rows) < TARGETED_SHARE
    target_category = rng.choice(NUM_CATEGORIES, rows, p=category_share)
    target_category[targeted] = interest[user[targeted],
                                         _weighted_choice(interest_weight, user[targeted], rng)]
    item = catalogue.draw_items(target_category, draws, rng)
    device = rng.choice(len(DEVICES), rows, p=DEVICE_SHARE)

    # The match of each row's history with its target, recent entries weighing more; computed per
    # history entry of every row (tens of millions at a million rows), so with 32-bit indices.
    token_row = np.repeat(np.arange(rows, dtype=np.int32), length)
    position = (np.arange(len(token_row), dtype=np.int32)
                - np.repeat((np.cumsum(length) - length).astype(np.int32), length))
    token = user.astype(np.int32)[token_row] * max_history + position
    recency = RECENCY ** (length[token_row] - 1 - position)
    category_match = np.bincount(
        token_row, weights=recency * (sequence_category[token] == target_category[token_row]),
        minlength=rows)
    item_match = np.bincount(token_row, weights=recency * (sequence_item[token] == item[token_row]),
                             minlength=rows)
    category_affinity = np.tanh(category_match / 2.0)
    item_affinity = np.minimum(item_match, 1.0)
    relative_price = catalogue.log_price[item] - catalogue.category_log_price[target_category]

    click_logit = (-3.0 + 1.7 * category_affinity + 0.8 * item_affinity
                   + 0.2 * popularity_z[item] - 0.2 * relative_price + DEVICE_CLICK_EFFECT[device])
    conversion_logit = (-1.8 + 1.0 * item_affinity + 0.5 * category_affinity
                        - 0.8 * relative_price - 0.3 * (catalogue.log_price[item] - 3.3)
                        + DEVICE_CONVERSION_EFFECT[device])
    p_click = _sigmoid(click_logit)
    p_purchase = p_click * _sigmoid(conversion_logit)
    click = rng.random(rows) < p_click
    # Conversion is drawn for every row but only counts after a click.
    purchase = click & (rng.random(rows) < p_purchase / p_click)

    review_count = rng.poisson(np.exp(1.0 + 0.4 * (log_popularity[item] - log_popularity.max() + 12)
                                      + catalogue.review_rate[item]))
    item_table, category_table = _id_table('i', NUM_ITEMS, 6), _id_table('c', NUM_CATEGORIES, 3)
    frame = pd.DataFrame({
        'user_id': np.char.add('u', np.char.zfill(user.astype(str), 7)),
        'item_id': _ids(item_table, item),
        'item_category': _ids(category_table, target_category),
        'device': np.array(DEVICES)[device],
        'price': np.round(np.exp(catalogue.log_price[item]), 2),
        'item_review_count': review_count,
        'hist_item_ids': _joined(item_table, sequence_item[token], length),
        'hist_categories': _joined(category_table, sequence_category[token], length),
        'click': click.astype(int),
        'purchase': purchase.astype(int),
    })
    # Rows in a random order: a user's rows are not next to each other.
    shuffle = rng.permutation(rows)
    probabilities = {'ctr': p_click[shuffle], 'ctcvr': p_purchase[shuffle]}
    return frame.iloc[shuffle].reset_index(drop=True), probabilities


def bayes_auc(frame, probabilities):
    """Per task: the expected AUC of the true probability, and its AUC on these very rows (any
    subset of a generated frame, with its probabilities indexed alike)."""
    return {
        task: {
            'expected': round(expected_auc(probabilities[task]), 4),
            'on_sample': round(sample_auc(probabilities[task], frame[label].to_numpy()), 4),
            'positive_rate': round(float(frame[label].mean()), 4),
        }
        for task, label in TASK_LABELS.items()
    }


def write(out_dir, rows, seed=7, day=0, max_history=MAX_HISTORY):
    """Writes `clicklog.csv` and `bayes_auc.json` into `out_dir`; returns the Bayes AUC report."""
    frame, probabilities = generate(rows, seed, day, max_history)
    return write_frame(out_dir, CSV_NAME, frame, {'rows': rows, 'seed': seed, 'day': day,
                                                  'max_history': max_history,
                                                  'bayes_auc': bayes_auc(frame, probabilities)})


def write_days(out_dir, days, rows_per_day, seed=7, first_day=0):
    """Writes day k's log into `out_dir/span-<k>/` (`write`: `clicklog.csv`, `bayes_auc.json`) for
    k = first_day .. first_day + days - 1, one catalogue whose popularity drifts by day; returns
    {day: its Bayes AUC report}."""
    return {day: write(os.path.join(out_dir, f'span-{day}'), rows_per_day, seed, day)
            for day in range(first_day, first_day + days)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', type=int, default=100000, help='impressions to generate')
    parser.add_argument('--seed', type=int, default=7)
    parser.add_argument('--day', type=int, default=0,
                        help="the day's item popularity (drifts); with --days, the first day")
    parser.add_argument('--days', type=int,
                        help='that many days, --rows each, in span-<day>/ folders under --out')
    parser.add_argument('--max-history', type=int, default=MAX_HISTORY,
                        help='the most entries of a history (default %(default)s)')
    parser.add_argument('--out', required=True, help='directory for the CSV and bayes_auc.json')
    args = parser.parse_args(argv)
    if args.days is None:
        reports = {None: write(args.out, args.rows, args.seed, args.day, args.max_history)}
    else:
        reports = write_days(args.out, args.days, args.rows, args.seed, args.day)
    for day, report in reports.items():
        out = args.out if day is None else os.path.join(args.out, f'span-{day}')
        print(f'wrote {args.rows} rows to {os.path.join(out, CSV_NAME)}')
        for task, auc in report['bayes_auc'].items():
            print(f"{task}: positive rate {auc['positive_rate']:.3f}, "
                  f"Bayes AUC {auc['expected']:.3f} (on these rows {auc['on_sample']:.3f})")


if __name__ == '__main__':
    main()
