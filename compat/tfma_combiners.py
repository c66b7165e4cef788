"""TFMA's combiners that sum labels and predictions, adding a group of examples at once.

The Evaluators' extracts hold groups of examples (components/grouped_evaluation.py). TFMA's
combiners behind its calibration histogram and its weighted sums read any extract, but add its
examples one by one in Python, through several calls per example: a large share of an
Evaluator's time (docs/performance.md). The combiners here compute the same from the group's
arrays with numpy, and `tfma_combiners_for_groups` has TFMA build its metrics with them.

They live apart from grouped_evaluation.py because TFX's Evaluator reloads the module of its
`module_path`: a class of that module would be another class after the reload, and Beam's
default pickler (dill, in the Kubeflow containers) would then pickle it, and TFMA's class it
replaces, by value, without end.

They are subclasses over TFMA's private combiner classes, reading their private attributes (the
metric key, the eval config, the histogram's bucketing), and are swapped in by those classes'
names, which TFMA 0.47 looks up in their modules when it builds a metric's computations.
What would let them go: TFMA adding an extract's examples at once when its labels and
predictions are arrays (or taking the combiners as an argument of its metrics).
"""

import contextlib
from typing import Iterator

import numpy as np
from tensorflow_model_analysis.metrics import calibration, calibration_histogram, metric_util

from compat import patched
from components.grouped_evaluation import labels_and_predictions


def _simple(combiner) -> bool:
    """Whether a TFMA combiner reads each example's label and prediction as they are (no class
    weights, sub keys or aggregation over classes), which is what its vectorized form computes."""
    return not (combiner._class_weights or combiner._aggregation_type  # pylint: disable=protected-access
                or combiner._key.sub_key)  # pylint: disable=protected-access


def _bucket_sums(buckets: np.ndarray, sums: np.ndarray):
    """(sorted bucket ids, sums: one column per id) of the columns of `sums` added by bucket."""
    ids, where = np.unique(buckets, return_inverse=True)
    return ids, np.stack([np.bincount(where, weights=row, minlength=len(ids)) for row in sums])


class _GroupedCalibrationHistogramCombiner(calibration_histogram._CalibrationHistogramCombiner):  # pylint: disable=protected-access
    """TFMA's calibration histogram (behind AUC, AUCPrecisionRecall and the calibration and
    confusion-matrix plots), adding an extract's examples at once: TFMA's combiner adds them one
    by one in Python, through several calls per example. The buckets, fractional labels and
    errors are TFMA's. The accumulator holds the buckets TFMA's dictionary would, as arrays: the
    bucket ids, and per bucket the weighted labels, predictions and examples."""

    def create_accumulator(self):
        return np.zeros(0, np.int64), np.zeros((3, 0))

    def _arrays(self, histogram):
        """TFMA's dictionary accumulator as ours."""
        buckets = sorted(histogram.values(), key=lambda bucket: bucket.bucket_id)
        return (np.array([bucket.bucket_id for bucket in buckets], np.int64),
                np.array([[bucket.weighted_labels, bucket.weighted_predictions,
                           bucket.weighted_examples] for bucket in buckets]).reshape(-1, 3).T)

    def _tfmas_add_input(self, accumulator, element):
        """TFMA's own path, for what it reads otherwise and for the errors it raises."""
        return self.merge_accumulators([accumulator,
                                        self._arrays(super().add_input({}, element))])

    def add_input(self, accumulator, element):
        if not _simple(self):
            return self._tfmas_add_input(accumulator, element)
        key = self._key
        label, prediction, weight = labels_and_predictions(
            element, self._eval_config, key.model_name, key.output_name, self._example_weighted)
        values = prediction if self._prediction_based_bucketing else label
        if not prediction.size or label.size != prediction.size or np.isnan(values).any() or (
                self._fractional_labels
                and not all(metric_util.within_interval(float(bound), 0.0, 1.0)
                            for bound in (label.min(), label.max()))):
            return self._tfmas_add_input(accumulator, element)
        if self._fractional_labels:
            # Each example as TFMA splits it: label 0 with weight w(1-l), label 1 with weight wl,
            # dropping the parts of weight 0.
            weight = np.stack([weight * (1 - label), weight * label], axis=1).ravel()
            label = np.tile([0.0, 1.0], len(prediction))
            prediction = np.repeat(prediction, 2)
            kept = weight != 0
            label, prediction, weight = label[kept], prediction[kept], weight[kept]
            values = prediction if self._prediction_based_bucketing else label
        index = (values - self._left) / self._range * self._num_buckets + 1
        buckets = np.clip(index, 0, self._num_buckets + 1).astype(np.int64)
        added = _bucket_sums(buckets, np.stack([label * weight, prediction * weight, weight]))
        return self.merge_accumulators([accumulator, added])

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        return _bucket_sums(np.concatenate([ids for ids, _ in accumulators]),
                            np.concatenate([sums for _, sums in accumulators], axis=1))

    def extract_output(self, accumulator):
        ids, (labels, predictions, weights) = accumulator
        return {self._key: [calibration_histogram.Bucket(*entry) for entry in zip(
            ids.tolist(), labels.tolist(), predictions.tolist(), weights.tolist())]}


class _GroupedWeightedLabelsPredictionsExamplesCombiner(
        calibration._WeightedLabelsPredictionsExamplesCombiner):  # pylint: disable=protected-access
    """TFMA's sums of weighted labels, predictions and examples (behind Calibration, MeanLabel and
    MeanPrediction), adding an extract's examples at once where TFMA adds them one by one."""

    def add_input(self, accumulator, element):
        if not _simple(self):
            return super().add_input(accumulator, element)
        key = self._key
        (label, prediction, weight), = metric_util.to_label_prediction_example_weight(
            element, eval_config=self._eval_config, model_name=key.model_name,
            output_name=key.output_name, example_weighted=self._example_weighted,
            allow_none=True, flatten=False, squeeze=False)
        if label is None or prediction is None or not np.size(prediction) or (
                np.size(label) not in (0, np.size(prediction))):
            return super().add_input(accumulator, element)
        label = np.asarray(label, np.float64).ravel()
        prediction = np.asarray(prediction, np.float64).ravel()
        weight = np.broadcast_to(np.asarray(weight, np.float64).ravel(), prediction.shape)
        accumulator.total_weighted_examples += float(np.sum(weight))
        if label.size:  # TFMA adds no label or prediction for examples without a label
            accumulator.total_weighted_labels += float(np.sum(label * weight))
            accumulator.total_weighted_predictions += float(np.sum(prediction * weight))
        return accumulator


# TFMA's combiners that the Evaluators replace (`tfma_combiners_for_groups`), by their module.
_COMBINERS = ((calibration_histogram, '_CalibrationHistogramCombiner',
               _GroupedCalibrationHistogramCombiner),
              (calibration, '_WeightedLabelsPredictionsExamplesCombiner',
               _GroupedWeightedLabelsPredictionsExamplesCombiner))


@contextlib.contextmanager
def tfma_combiners_for_groups() -> Iterator[None]:
    """While it lasts, the metric computations TFMA builds use the combiners above. TFMA 0.47
    builds its computations' combiners by these names in their modules, with no other way in;
    the executor that builds the Beam pipeline holds this around it, and the pipeline keeps the
    combiners it was built with."""
    with contextlib.ExitStack() as stack:
        for module, name, grouped in _COMBINERS:
            stack.enter_context(patched(module, name, grouped))
        yield
