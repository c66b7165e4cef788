"""Group AUC (trainer_module/task_types/group_auc.py): against pandas groupby and sklearn's
roc_auc_score per group on generated data, its counts when groups hold one class, and its
jackknife intervals' coverage on simulated pairs of models against the true value."""

import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from trainer_module.task_types import group_auc


def _reference(labels, scores, groups):
    """GAUC of each model in `scores` (k x n), computed per group with pandas and sklearn."""
    frame = pd.DataFrame({'group': pd.Series(groups, dtype=object), 'label': labels > 0.5})
    for model, score in enumerate(scores):
        frame[f'score{model}'] = score
    aucs, weights = [], []
    for _, rows in frame.dropna(subset=['group']).groupby('group'):
        if rows.label.nunique() == 2:
            aucs.append([roc_auc_score(rows.label, rows[f'score{model}'])
                         for model in range(len(scores))])
            weights.append(len(rows))
    return np.array(aucs).T @ np.array(weights) / np.sum(weights), len(weights)


def _data(seed, n=3000):
    """Labels (not all 0/1: thresholded at 0.5), two models' scores with many ties, and group
    ids with many groups of one example, one-class groups and a few ungrouped rows."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 900, n)
    labels = np.where(rng.random(n) < 0.3, rng.choice([1.0, 0.9], n), rng.choice([0.0, 0.2], n))
    scores = np.round(rng.normal(size=(2, n)) + (labels > 0.5), 1)
    return labels, scores, groups


@pytest.mark.parametrize('ids', ['int', 'str', 'bytes'])
def test_gauc_matches_sklearn_per_group(ids):
    labels, scores, groups = _data(seed=len(ids))
    groups = {'int': groups,
              'str': np.array([f'user{g}' for g in groups], dtype=object),
              'bytes': np.array([b'%d' % g for g in groups], dtype=object)}[ids]
    if ids != 'int':
        groups[::37] = None
    expected, used = _reference(labels, scores, groups)
    result = group_auc.group_aucs(labels, scores, groups)

    np.testing.assert_allclose(result.gauc, expected, rtol=0, atol=1e-9)
    assert result.groups_used == used
    assert result.aucs.shape == (2, used)
    np.testing.assert_allclose(group_auc.gauc(labels, scores[1], groups), expected[1],
                               rtol=0, atol=1e-9)
    grouped = pd.Series(groups, dtype=object).notna()
    assert result.groups_total == pd.Series(groups[grouped]).nunique()
    assert result.rows_total == len(labels)
    assert result.rows_covered == result.weights.sum()
    assert 0.5 < result.row_share < 1
    # Per-group AUCs by sklearn with the group sizes as weights: the groups with one example or
    # one class (most of the 900 here) skipped, not counted as 0 or 0.5.
    assert used < result.groups_total


def test_no_group_with_both_classes_gives_nan_and_the_counts():
    labels = np.array([1, 1, 0, 0, 1, 0])
    groups = np.array(['a', 'a', 'b', 'b', 'c', None], dtype=object)
    result = group_auc.group_aucs(labels, np.linspace(0, 1, 6), groups)

    assert (result.groups_used, result.groups_total) == (0, 3)
    assert (result.rows_covered, result.rows_total) == (0, 6)
    assert result.row_share == 0
    assert math.isnan(group_auc.gauc(labels, np.linspace(0, 1, 6), groups))
    interval = group_auc.gauc_interval(labels, np.linspace(0, 1, 6), groups, 0.95)
    assert all(math.isnan(x) for x in (interval.value, interval.lower, interval.upper))


def test_one_used_group_has_a_value_but_no_interval():
    labels, scores, groups = np.array([1, 0, 1, 1]), np.array([0.9, 0.1, 0.5, 0.6]), [7, 7, 8, 8]
    interval = group_auc.gauc_interval(labels, scores, groups, 0.95)
    assert interval.value == 1 and math.isnan(interval.lower) and math.isnan(interval.upper)
    change = group_auc.gauc_change_interval(labels, scores, 1 - scores, groups, 0.95)
    assert change.value == 1 and math.isnan(change.lower) and math.isnan(change.upper)


def test_intervals_are_clipped_and_reproducible():
    # 20 groups of a positive and a negative, ranked right in all but one: a GAUC of 0.95 whose
    # normal interval would reach past 1, and a change of 0.9 against the reverse ranking.
    labels, groups = np.tile([1, 0], 20), np.repeat(np.arange(20), 2)
    nearly = np.where(groups == 0, 1 - labels, labels).astype(float)
    value = group_auc.gauc_interval(labels, nearly, groups, 0.95)
    assert value.value == pytest.approx(0.95) and value.upper == 1 and value.lower < 0.95
    change = group_auc.gauc_change_interval(labels, nearly, -nearly, groups, 0.95)
    assert change.value == pytest.approx(0.9) and change.upper == 1 and change.lower < 0.9

    labels, scores, groups = _data(seed=5)

    first = group_auc.gauc_change_interval(labels, scores[0], scores[1], groups, 0.95)
    assert group_auc.gauc_change_interval(labels, scores[0], scores[1], groups, 0.95) == first
    # Nor does it depend on the rows' order.
    shuffled = np.random.default_rng(0).permutation(len(labels))
    again = group_auc.gauc_change_interval(labels[shuffled], scores[0][shuffled],
                                           scores[1][shuffled], groups[shuffled], 0.95)
    np.testing.assert_allclose([again.value, again.lower, again.upper],
                               [first.value, first.lower, first.upper], rtol=0, atol=1e-12)
    assert first.lower < first.value < first.upper


# The simulated population: each group (a user) has a size, a click rate and a signal strength
# (weaker for heavy users, so the weights matter); the candidate has a little more signal than
# the baseline, and both share each row's noise and each group's offset, so they are correlated.
NOISE = 0.7


def _population(rng, groups):
    sizes = 1 + rng.poisson(rng.gamma(1.0, 8.0, groups))
    click_rates = rng.beta(2, 6, groups)
    strength = np.clip(rng.normal(0.8, 0.4, groups) - 0.1 * np.log(sizes), 0, None)
    return sizes, click_rates, strength + 0.25, strength


def _true_values(rng, groups=2_000_000):
    """The population's GAUC of the candidate and its change against the baseline, the limit of
    the estimate over many groups: within a group with both classes the AUC is unbiased for
    P(positive's score > negative's) = Phi(strength / sqrt(2 (1 + NOISE^2))) (normal scores), and a
    group's expected weight is its size times the chance it holds both classes."""
    sizes, click_rates, candidate, baseline = _population(rng, groups)
    weights = sizes * (1 - (1 - click_rates) ** sizes - click_rates ** sizes)
    auc_candidate, auc_baseline = (stats.norm.cdf(s / math.sqrt(2 * (1 + NOISE ** 2)))
                                   for s in (candidate, baseline))
    return (weights @ auc_candidate / weights.sum(),
            weights @ (auc_candidate - auc_baseline) / weights.sum())


def _sample(rng, groups):
    sizes, click_rates, candidate, baseline = _population(rng, groups)
    group = np.repeat(np.arange(groups), sizes)
    labels = (rng.random(len(group)) < click_rates[group]).astype(float)
    shared = rng.normal(size=len(group)) + rng.normal(size=groups)[group]
    return (labels, candidate[group] * labels + shared + NOISE * rng.normal(size=len(group)),
            baseline[group] * labels + shared + NOISE * rng.normal(size=len(group)), group)


def test_intervals_cover_the_true_gauc_and_change():
    rng = np.random.default_rng(1)
    true_gauc, true_change = _true_values(rng)
    draws, hits = 300, np.zeros(2)
    for _ in range(draws):
        labels, candidate, baseline, groups = _sample(rng, groups=300)
        value = group_auc.gauc_interval(labels, candidate, groups, 0.95)
        change = group_auc.gauc_change_interval(labels, candidate, baseline, groups, 0.95)
        hits += [value.lower <= true_gauc <= value.upper,
                 change.lower <= true_change <= change.upper]
    coverage = hits / draws
    print(f'95% coverage over {draws} draws: GAUC {coverage[0]:.3f}, change {coverage[1]:.3f}')
    # 300 draws at 95% have a standard deviation of 1.3 points.
    assert np.all((coverage >= 0.90) & (coverage <= 0.99)), coverage


def test_million_rows_and_100k_groups():
    rng = np.random.default_rng(2)
    n = 1_000_000
    groups = rng.permutation(n) % 100_000
    labels = rng.random(n) < 0.2
    scores = rng.random((2, n)) + 0.2 * labels
    start = time.perf_counter()
    result = group_auc.group_aucs(labels, scores, groups)
    # A bench-like figure, not asserted: the machines that run the tests differ too much.
    print(f'group_aucs, 1M rows, 100k groups, 2 models: {time.perf_counter() - start:.2f} s')
    assert (result.rows_total, result.groups_total) == (n, 100_000)
    assert 0.5 < result.gauc[0] < 0.7
