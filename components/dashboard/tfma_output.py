"""Reading what an Evaluator wrote (TFMA's output) for a task's dashboard page: `TaskEvaluation`,
its metrics per slice and model, and the overall slice's ROC, precision-recall and calibration
curves; `notebook_view`, TFMA's own interactive view of the same output."""

import json
from typing import Any, Dict, List, Optional, Tuple

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers import eval_config_writer

from components import intervals
from components.grouped_evaluation import SAMPLE_SPACE

OVERALL = 'Overall'
CALIBRATION_BINS = 10


class TaskEvaluation:
    """What one Evaluator wrote: metrics per slice and model, and the overall slice's plots.

    `metrics`: {slice: {metric: {'candidate'|'baseline'|'difference': value}}};
    `curves`: {'candidate'|'baseline': {'roc': (fpr, tpr), 'pr': (recall, precision),
               'calibration': [(mean prediction, mean label, count)]}};
    `models`: {'candidate'|'baseline': TFMA's model name}. `load()` reads them from TFMA's output.
    """

    def __init__(self, uri: str, task: str, label: str, models: Dict[str, str],
                 metrics: Dict[str, Dict[str, Dict[str, float]]], curves: Dict[str, Dict],
                 intervals: Optional[Dict[str, Dict[str, Dict[str, Tuple[float, float]]]]] = None,
                 confidence: float = 0.95, group_by: Optional[str] = None,
                 sample_space: Optional[str] = None):
        """`intervals`: {slice: {metric: {'candidate'|'difference': (lower, upper)}}} at
        `confidence` (components/intervals.py); `group_by`: the column of the groups of the
        group AUC, if any; `sample_space`: the label column whose rows at 1 the task was judged on,
        if not every row."""
        self.uri, self.task, self.label, self.models = uri, task, label, models
        self.metrics, self.curves = metrics, curves
        self.intervals, self.confidence = intervals or {}, confidence
        self.group_by, self.sample_space = group_by, sample_space

    @classmethod
    def load(cls, evaluation_uri: str) -> 'TaskEvaluation':
        """The evaluation an Evaluator wrote to `evaluation_uri` (its `evaluation` artifact's
        URI): the task is the candidate's prediction key, the label its label key."""
        eval_config, _, _, _ = eval_config_writer.load_eval_run(evaluation_uri)
        candidate = next(spec for spec in eval_config.model_specs if not spec.is_baseline)
        baseline = next((spec for spec in eval_config.model_specs if spec.is_baseline), None)
        models = {'candidate': candidate.name}
        if baseline is not None:
            models['baseline'] = baseline.name
        role = {name: role for role, name in models.items()}
        metrics: Dict[str, Dict[str, Dict[str, float]]] = {}
        found_intervals: Dict[str, Dict[str, Dict[str, Tuple[float, float]]]] = {}
        for per_slice in tfma.load_metrics(evaluation_uri):
            slice_metrics = metrics.setdefault(_slice_name(per_slice.slice_key), {})
            for key_and_value in per_slice.metric_keys_and_values:
                key, value = key_and_value.key, key_and_value.value
                if not value.HasField('double_value') or key.model_name not in role:
                    continue
                column = 'difference' if key.is_diff else role[key.model_name]
                if key.name.endswith(intervals.SUFFIX):
                    bounds = key_and_value.confidence_interval
                    found_intervals.setdefault(_slice_name(per_slice.slice_key), {}).setdefault(
                        key.name[:-len(intervals.SUFFIX)], {})[column] = (
                            bounds.lower_bound.double_value.value,
                            bounds.upper_bound.double_value.value)
                    continue
                slice_metrics.setdefault(key.name, {})[column] = value.double_value.value
        curves: Dict[str, Dict] = {}
        for per_slice in tfma.load_plots(evaluation_uri):
            if _slice_name(per_slice.slice_key) != OVERALL:
                continue
            for key_and_value in per_slice.plot_keys_and_values:
                if key_and_value.key.model_name not in role:
                    continue
                model_curves = curves.setdefault(role[key_and_value.key.model_name], {})
                plot = key_and_value.value
                if plot.HasField('confusion_matrix_at_thresholds'):
                    model_curves.update(_roc_and_pr(plot.confusion_matrix_at_thresholds.matrices))
                if plot.HasField('calibration_histogram_buckets'):
                    model_curves['calibration'] = _calibration_bins(
                        plot.calibration_histogram_buckets.buckets)
        settings: Dict[str, Any] = next((json.loads(metric.config) for spec in eval_config.metrics_specs
                         for metric in spec.metrics
                         if metric.class_name == intervals.Intervals.__name__), {})
        return cls(evaluation_uri, candidate.prediction_key, candidate.label_key, models, metrics,
                   curves, found_intervals, settings.get('confidence', 0.95),
                   settings.get('group_by'), settings.get(SAMPLE_SPACE))

    def slices(self) -> List[str]:
        """The slices' names: OVERALL first, then the others in name order."""
        return sorted(self.metrics, key=lambda name: (name != OVERALL, name))


def _slice_name(slice_key) -> str:
    return tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(slice_key)) or OVERALL


def _roc_and_pr(matrices) -> Dict[str, Tuple[List[float], List[float]]]:
    points = sorted(matrices, key=lambda m: m.threshold)
    fpr = [m.false_positive_rate for m in points]
    tpr = [m.recall for m in points]
    # Precision is undefined where nothing is predicted positive: TFMA writes 1 there; drop it.
    pr = [(m.recall, m.precision) for m in points if m.true_positives + m.false_positives > 0]
    return {'roc': (fpr, tpr), 'pr': ([r for r, _ in pr], [p for _, p in pr])}


def _calibration_bins(buckets) -> List[Tuple[float, float, float]]:
    """TFMA's fine histogram regrouped into CALIBRATION_BINS equal-width prediction bins:
    [(mean prediction, mean label, weighted examples)] for the non-empty bins."""
    sums = [[0.0, 0.0, 0.0] for _ in range(CALIBRATION_BINS)]
    for bucket in buckets:
        if not bucket.num_weighted_examples.value:
            continue
        lower = min(max(bucket.lower_threshold_inclusive, 0.0), 1.0)
        index = min(int(lower * CALIBRATION_BINS), CALIBRATION_BINS - 1)
        sums[index][0] += bucket.total_weighted_refined_prediction.value
        sums[index][1] += bucket.total_weighted_label.value
        sums[index][2] += bucket.num_weighted_examples.value
    return [(p / n, label / n, n) for p, label, n in sums if n]


def notebook_view(evaluation_uri: str, slicing_column: Optional[str] = None):
    """TFMA's interactive slicing-metrics view of one task's evaluation, for Jupyter (it needs the
    TFMA notebook extension and network access for its JavaScript)."""
    return tfma.view.render_slicing_metrics(tfma.load_eval_result(evaluation_uri),
                                            slicing_column=slicing_column)
