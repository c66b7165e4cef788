"""Confidence intervals of the gated metrics, and of the candidate's change from the baseline, on
the same eval examples: a TFMA metric that each Evaluator computes beside TFMA's own.

TFMA 0.47 can put intervals on every metric (`compute_confidence_intervals`: a 20-bucket delete-d
jackknife or a 20-sample Poisson bootstrap, always at 95%), and its diff metrics are then paired;
but its validator checks the point estimate only (`metrics_validator.validate_metrics` compares
`float(metric)` with the bound), and it resamples every metric and plot 20 times. So the intervals
here are computed directly, from both models' predictions for each eval example:

- AUC: DeLong, DeLong and Clarke-Pearson (1988), in the midrank form of Sun and Xu (2014). Its
  covariance of the two models' AUCs on the same examples gives the paired interval of the change.
- mean squared error: the normal interval of the mean of per-example squared errors, and of their
  per-example differences for the change.
- calibration (mean prediction / mean label, TFMA's `calibration`): the delta method.

Both need every example's label and predictions: the combiner keeps three floats per example and
slice, which suits eval splits up to a few million rows.

They are written as TFMA metrics `<metric>_interval` (the candidate's value and interval; with a
baseline, a diff key for the change) whose values carry TFMA's `confidence_interval`; the
BlessingGate decides on the change's interval (`change_test: significant`), the dashboards show them.
"""

import dataclasses
import math
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import numpy as np
from scipy import stats
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2, metrics_for_slice_pb2
from tensorflow_model_analysis.utils import model_util

from components.grouped_evaluation import labels_and_predictions

SUFFIX = '_interval'
# The metric each task type is gated on, as TFMA names it, and the metrics given an interval.
GATED_METRIC = {'binary': 'auc', 'regression': 'mean_squared_error'}
METRICS = {'binary': ('auc', 'calibration'), 'regression': ('mean_squared_error',)}


def interval_name(metric: str) -> str:
    """The TFMA metric name of `metric`'s interval, e.g. `auc_interval`."""
    return metric + SUFFIX


@dataclasses.dataclass(frozen=True)
class Interval:
    """A metric's value and the bounds of its confidence interval (NaN where there is none)."""

    value: float
    lower: float
    upper: float


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _normal(value: float, variance: float, confidence: float,
            bounds: Tuple[float, float] = (-math.inf, math.inf)) -> Interval:
    if not math.isfinite(value) or not math.isfinite(variance):
        return Interval(value, math.nan, math.nan)
    half = _z(confidence) * math.sqrt(max(variance, 0.0))
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
    return _normal(float(aucs[0]), float(covariance[0, 0]), confidence, (0.0, 1.0))


def auc_change_interval(labels, candidate, baseline, confidence: float) -> Interval:
    """The candidate's AUC minus the baseline's, paired: both scored the same examples."""
    aucs, covariance = delong(labels, np.vstack([candidate, baseline]))
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    return _normal(float(aucs[0] - aucs[1]), float(variance), confidence, (-1.0, 1.0))


def _mean_interval(values: np.ndarray, confidence: float) -> Interval:
    if len(values) == 0:
        return Interval(math.nan, math.nan, math.nan)
    variance = float(np.var(values, ddof=1)) / len(values) if len(values) > 1 else 0.0
    return _normal(float(np.mean(values)), variance, confidence)


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
    return _normal(float(ratio), float(variance), confidence, (0.0, math.inf))


def intervals(task_type: str, labels, candidate, baseline: Optional[np.ndarray],
              confidence: float) -> Dict[Tuple[str, bool], Interval]:
    """{(metric name, is change): interval} for one task type's metrics."""
    if task_type == 'binary':
        result = {('auc', False): auc_interval(labels, candidate, confidence),
                  ('calibration', False): calibration_interval(labels, candidate, confidence)}
        if baseline is not None:
            result['auc', True] = auc_change_interval(labels, candidate, baseline, confidence)
    else:
        result = {('mean_squared_error', False): mse_interval(labels, candidate, confidence)}
        if baseline is not None:
            result['mean_squared_error', True] = mse_change_interval(labels, candidate, baseline,
                                                                     confidence)
    return result


# ---------------------------------------------------------------------------------------------
# The TFMA metric


class Intervals(metric_types.Metric):
    """`<metric>_interval` for the task type's metrics, at `confidence` (two-sided)."""

    def __init__(self, task_type: str = 'binary', confidence: float = 0.95,
                 name: str = 'intervals'):
        super().__init__(self._computations, task_type=task_type, confidence=confidence,
                         name=name)

    @staticmethod
    def _computations(task_type: str, confidence: float, eval_config: config_pb2.EvalConfig,
                      model_names: Iterable[str], output_names: Iterable[str] = ('',),
                      name: str = 'intervals') -> metric_types.MetricComputations:
        del name
        baseline = model_util.get_baseline_model_spec(eval_config)
        baseline_name = baseline.name if baseline else None
        computations = []
        for model_name in model_names:
            if model_name == baseline_name:
                continue
            for output_name in output_names or ('',):
                wanted = [(metric, False) for metric in METRICS[task_type]]
                if baseline_name is not None:
                    wanted.append((GATED_METRIC[task_type], True))
                keys = {(metric, change): metric_types.MetricKey(
                            name=interval_name(metric), model_name=model_name,
                            output_name=output_name, is_diff=change)
                        for metric, change in wanted}
                computations.append(metric_types.MetricComputation(
                    keys=list(keys.values()),
                    preprocessors=[_LabelsAndPredictions(eval_config, model_name, baseline_name,
                                                         output_name)],
                    combiner=_IntervalsCombiner(keys, task_type, confidence,
                                                baseline_name is not None)))
        return computations


class _LabelsAndPredictions(metric_types.Preprocessor):
    """Per extract (one example or a group of them): (labels, candidate predictions, baseline
    predictions), arrays. TFMA runs preprocessors once per extract, before it fans the extracts
    out to their slices: reading labels and predictions here is not repeated per slice."""

    def __init__(self, eval_config, model_name, baseline_name, output_name):
        super().__init__(name=f'_intervals_inputs_{model_name}_{baseline_name}_{output_name}')
        self._eval_config, self._output_name = eval_config, output_name
        self._model_name, self._baseline_name = model_name, baseline_name

    def process(self, extracts):
        inputs = metric_util.to_standard_metric_inputs(extracts)
        labels, candidate, _ = labels_and_predictions(inputs, self._eval_config,
                                                      self._model_name, self._output_name)
        baseline = (labels_and_predictions(inputs, self._eval_config, self._baseline_name,
                                           self._output_name)[1]
                    if self._baseline_name is not None else np.zeros(0))
        yield labels, candidate, baseline


class _IntervalsCombiner(beam.CombineFn):
    """Collects the labels, candidate and baseline predictions of a slice's extracts."""

    def __init__(self, keys, task_type, confidence, has_baseline):
        self._keys, self._task_type, self._confidence = keys, task_type, confidence
        self._has_baseline = has_baseline

    def create_accumulator(self) -> List[List[np.ndarray]]:
        return [[], [], []]

    def add_input(self, accumulator, element):
        for column, values in zip(accumulator, element):
            column.append(values)
        return accumulator

    def merge_accumulators(self, accumulators):
        result = self.create_accumulator()
        for accumulator in accumulators:
            for column, values in zip(result, accumulator):
                column.extend(values)
        return result

    def compact(self, accumulator):
        return [[np.concatenate(column)] if column else [] for column in accumulator]

    def extract_output(self, accumulator) -> Dict[metric_types.MetricKey, object]:
        labels, candidate, baseline = (np.concatenate(column) if column else np.zeros(0)
                                       for column in accumulator)
        computed = intervals(self._task_type, labels, candidate,
                             baseline if self._has_baseline else None, self._confidence)
        # A BoundedValue is written as the value with TFMA's `confidence_interval`.
        return {key: metrics_for_slice_pb2.BoundedValue(
                    value={'value': computed[which].value},
                    lower_bound={'value': computed[which].lower},
                    upper_bound={'value': computed[which].upper})
                for which, key in self._keys.items()}


metric_types.register_metric(Intervals)
