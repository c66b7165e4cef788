"""Confidence intervals of the metrics a task can be gated on, from every eval example's label and
the models' predictions (plain numpy; the Evaluators' TFMA metric in components/intervals.py calls
these through the task types):

- AUC: DeLong, DeLong and Clarke-Pearson (1988), in the midrank form of Sun and Xu (2014). Its
  covariance of the two models' AUCs on the same examples gives the paired interval of the change.
- mean squared error: the normal interval of the mean of per-example squared errors, and of their
  per-example differences for the change.
- calibration (mean prediction / mean label, TFMA's `calibration`): the delta method.
"""

import dataclasses
import math
from typing import Tuple

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Interval:
    """A metric's value and the bounds of its confidence interval (NaN where there is none)."""

    value: float
    lower: float
    upper: float


def z(confidence: float) -> float:
    """The normal quantile of a two-sided interval at `confidence` (1.96 at 0.95)."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def normal_interval(value: float, variance: float, confidence: float,
                    bounds: Tuple[float, float] = (-math.inf, math.inf)) -> Interval:
    """`value` within the normal interval of `variance` at `confidence`, clipped to `bounds`;
    NaN bounds where either is not finite."""
    if not math.isfinite(value) or not math.isfinite(variance):
        return Interval(value, math.nan, math.nan)
    half = z(confidence) * math.sqrt(max(variance, 0.0))
    return Interval(value, max(value - half, bounds[0]), min(value + half, bounds[1]))


def delong(labels: np.ndarray, scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """AUCs of k models' `scores` (k x n) on the same binary `labels` (n), and their k x k
    covariance matrix (DeLong). NaN when `labels` hold one class only."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    labels = np.asarray(labels) > 0.5
    positives, negatives = scores[:, labels], scores[:, ~labels]
    m, n = positives.shape[1], negatives.shape[1]
    k = scores.shape[0]
    if m == 0 or n == 0:
        return np.full(k, np.nan), np.full((k, k), np.nan)
    # Midranks: among the positives, among the negatives, and among all examples.
    rank_positives = np.apply_along_axis(stats.rankdata, 1, positives)
    rank_negatives = np.apply_along_axis(stats.rankdata, 1, negatives)
    rank_all = np.apply_along_axis(stats.rankdata, 1, np.hstack([positives, negatives]))
    aucs = (rank_all[:, :m].sum(axis=1) - m * (m + 1) / 2) / (m * n)
    # Per positive: the share of negatives it outscores (ties count half); per negative: the share
    # of positives that outscore it.
    v_positives = (rank_all[:, :m] - rank_positives) / n
    v_negatives = 1.0 - (rank_all[:, m:] - rank_negatives) / m
    covariance = (np.atleast_2d(np.cov(v_positives)) / m if m > 1 else np.zeros((k, k))) + \
                 (np.atleast_2d(np.cov(v_negatives)) / n if n > 1 else np.zeros((k, k)))
    return aucs, covariance


def auc_interval(labels, scores, confidence: float) -> Interval:
    """The AUC of `scores` (n) on the binary `labels` (n), within DeLong's interval at
    `confidence`; all NaN when `labels` hold one class only."""
    aucs, covariance = delong(labels, np.asarray(scores)[None, :])
    return normal_interval(float(aucs[0]), float(covariance[0, 0]), confidence, (0.0, 1.0))


def auc_change_interval(labels, candidate, baseline, confidence: float) -> Interval:
    """The candidate's AUC minus the baseline's, paired: both scored the same examples."""
    aucs, covariance = delong(labels, np.vstack([candidate, baseline]))
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    return normal_interval(float(aucs[0] - aucs[1]), float(variance), confidence, (-1.0, 1.0))


def _mean_interval(values: np.ndarray, confidence: float) -> Interval:
    if len(values) == 0:
        return Interval(math.nan, math.nan, math.nan)
    variance = float(np.var(values, ddof=1)) / len(values) if len(values) > 1 else 0.0
    return normal_interval(float(np.mean(values)), variance, confidence)


def mse_interval(labels, predictions, confidence: float) -> Interval:
    """The mean squared error of `predictions` on `labels`, within the normal interval of the
    mean of the per-example squared errors; all NaN on no examples."""
    return _mean_interval((np.asarray(labels) - np.asarray(predictions)) ** 2, confidence)


def mse_change_interval(labels, candidate, baseline, confidence: float) -> Interval:
    """The candidate's mean squared error minus the baseline's, paired: within the normal
    interval of the mean of the per-example differences of squared errors."""
    labels = np.asarray(labels)
    return _mean_interval((labels - np.asarray(candidate)) ** 2
                          - (labels - np.asarray(baseline)) ** 2, confidence)


def calibration_interval(labels, predictions, confidence: float) -> Interval:
    """Mean prediction / mean label (TFMA's `calibration`), by the delta method."""
    labels, predictions = np.asarray(labels, np.float64), np.asarray(predictions, np.float64)
    n = len(labels)
    if n < 2 or labels.mean() == 0:
        return Interval(math.nan, math.nan, math.nan)
    ratio = predictions.mean() / labels.mean()
    covariance = np.cov(predictions, labels)
    variance = (covariance[0, 0] - 2 * ratio * covariance[0, 1] + ratio ** 2 * covariance[1, 1]) \
        / (n * labels.mean() ** 2)
    return normal_interval(float(ratio), float(variance), confidence, (0.0, math.inf))
