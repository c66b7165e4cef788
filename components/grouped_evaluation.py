"""The Evaluators' TFMA extractors and metrics, on groups of examples instead of one at a time.

TFMA 0.47 runs the model on batches, then unbatches the predictions into one extract per example
and slices those; every metric then adds the examples one by one in Python, through several layers
of lookups per example, slice and metric: hundreds of times slower than the model scores them
(docs/performance.md has the figures).

Here the extractors up to the predictions are TFMA's own (batched); `SliceGroups` then splits each
batch into groups of examples that belong to the same slices, and passes on one extract per group,
whose labels and predictions are arrays over its examples. The per-example cost of TFMA's machinery
(unbatching, slicing, the combiners' lookups) is paid once per group. The metrics see the same
examples: TFMA's metrics built on its calibration histogram (AUC, AUCPrecisionRecall, Calibration,
the calibration and confusion-matrix plots) and on weighted labels and predictions (MeanLabel,
MeanPrediction), and its regression errors, flatten an extract's arrays into one value per example.
Two that do not are replaced, under their TFMA names: TFMA's ExampleCount counts extracts, and the
Keras BinaryCrossentropy pads the arrays of a batch of extracts to one length.

The Evaluator finds `custom_extractors` through its `module_path` (this module).
"""

import collections
import json
import math
from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.extractors import extractor, slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.slicer import slicer_lib

# What a group's extract carries: what TFMA's metrics read.
_KEPT = (tfma.LABELS_KEY, tfma.PREDICTIONS_KEY, tfma.EXAMPLE_WEIGHTS_KEY)
# The key of a metric config (JSON) that names the label column of the task's sample space: the
# examples are kept where it is 1, the others are not evaluated (a CVR task on clicked rows).
SAMPLE_SPACE = 'sample_space'


def custom_extractors(eval_shared_model, eval_config: config_pb2.EvalConfig,
                      tensor_adapter_config) -> List[extractor.Extractor]:
    """TFMA's default extractors with its per-example stages (unbatching, slice keys) replaced by
    `SliceGroups`. Called by TFX's Evaluator."""
    kept = [stage for stage in tfma.default_extractors(
                eval_shared_model=eval_shared_model, eval_config=eval_config,
                tensor_adapter_config=tensor_adapter_config)
            if stage.stage_name not in (unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME,
                                        slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME)]
    return kept + [SliceGroups(eval_config)]


def SliceGroups(eval_config: config_pb2.EvalConfig) -> extractor.Extractor:  # pylint: disable=invalid-name
    """Batched extracts -> one extract per group of a batch's examples that share their slices."""
    if eval_config.cross_slicing_specs or any(spec.slice_keys_sql
                                              for spec in eval_config.slicing_specs):
        raise ValueError('grouped evaluation slices on features only: the eval config has cross '
                         'or SQL slicing specs')
    specs = [slicer_lib.SingleSliceSpec(spec=spec) for spec in eval_config.slicing_specs] or [
        slicer_lib.SingleSliceSpec()]
    features = sorted({name for spec in eval_config.slicing_specs for name in spec.feature_keys}
                      | {name for spec in eval_config.slicing_specs
                         for name in spec.feature_values})
    # TFMA's metrics evaluator runs after the stage of this name.
    return extractor.Extractor(stage_name=slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME,
                               ptransform=beam.ParDo(_SliceGroupsFn(
                                   specs, features, group_columns(eval_config),
                                   sample_space(eval_config))))


def _metric_settings(eval_config: config_pb2.EvalConfig, key: str) -> List[str]:
    """The values of `key` in the JSON configs of the eval config's metrics (those that set it)."""
    values = set()
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            if metric.config and f'"{key}"' in metric.config:
                value = json.loads(metric.config).get(key)
                if value:
                    values.add(value)
    return sorted(values)


def group_columns(eval_config: config_pb2.EvalConfig) -> List[str]:
    """The columns that metrics computed within groups of examples (a group AUC) group by: the
    `group_by` of their configs."""
    return _metric_settings(eval_config, 'group_by')


def sample_space(eval_config: config_pb2.EvalConfig) -> Optional[str]:
    """The label column whose rows at 1 are the task's sample space (a metric config's
    `SAMPLE_SPACE`), None for every row."""
    found = _metric_settings(eval_config, SAMPLE_SPACE)
    if len(found) > 1:
        raise ValueError(f'the eval config names several sample spaces: {found}')
    return found[0] if found else None


def group_ids(element, column: str) -> np.ndarray:
    """An extract's group ids (one per example, None where an example has none) in `column`,
    which `SliceGroups` keeps for the metrics computed within groups."""
    features = element.get(tfma.FEATURES_KEY) or {}
    if column not in features:
        raise ValueError(f'evaluation.group_by: {column!r} is not a feature of the eval examples '
                         f'(they have {sorted(features)})')
    return features[column]


def _row_values(value, rows: int, name: str) -> List[tuple]:
    """A batched feature -> each row's values, as a tuple (empty where the row has none)."""
    if isinstance(value, types.VarLenTensorValue):
        per_row: List[list] = [[] for _ in range(rows)]
        for row, item in zip(value.indices[:, 0].tolist(), value.values.tolist()):
            per_row[row].append(item)
        return [tuple(values) for values in per_row]
    if isinstance(value, np.ndarray) and value.shape[:1] == (rows,):
        return [tuple(np.ravel(item).tolist()) for item in value]
    raise ValueError(f'slice feature {name!r}: cannot read it row by row from {type(value)}')


def _row_ids(value, rows: int, name: str) -> np.ndarray:
    """A batched feature -> each row's one value, as an object array: None where a row has none
    or several (a group id is one value)."""
    if isinstance(value, types.VarLenTensorValue):
        row_of = value.indices[:, 0]
        counts = np.bincount(row_of, minlength=rows)
        ids = np.full(rows, None, dtype=object)
        single = counts[row_of] == 1
        ids[row_of[single]] = np.asarray(value.values, dtype=object)[single]
        return ids
    if isinstance(value, np.ndarray) and value.shape[:1] == (rows,):
        flat = value.reshape(rows, -1)
        ids = np.full(rows, None, dtype=object)
        if flat.shape[1] == 1:
            ids[:] = flat[:, 0].astype(object)
        return ids
    raise ValueError(f'group feature {name!r}: cannot read it row by row from {type(value)}')


def _dense(value, rows: int, what: str):
    """A batched value with one entry per row, as an array with the batch first."""
    if value is None or isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict):
        return {key: _dense(item, rows, f'{what}[{key!r}]') for key, item in value.items()}
    if isinstance(value, types.VarLenTensorValue):
        if len(value.values) == rows and np.array_equal(value.indices[:, 0], np.arange(rows)):
            return value.values
        raise ValueError(f'{what}: {rows - len(np.unique(value.indices[:, 0]))} of {rows} eval '
                         'examples have no value, or some have several')
    return np.asarray(value)


def _take(value, rows: np.ndarray):
    if value is None:
        return None
    if isinstance(value, dict):
        return {key: _take(item, rows) for key, item in value.items()}
    return value[rows]


class _SliceGroupsFn(beam.DoFn):

    def __init__(self, specs: List[slicer_lib.SingleSliceSpec], features: List[str],
                 group_columns: List[str], space: Optional[str]):
        self._specs = specs
        self._features = features
        self._group_columns = group_columns
        self._space = space

    def _in_space(self, raw, rows: int) -> np.ndarray:
        """Whether each row is in the task's sample space (every row without one)."""
        if self._space is None:
            return np.ones(rows, bool)
        if self._space not in raw:
            raise ValueError(f'sample space {self._space!r}: not a column of the eval examples '
                             f'(they have {sorted(raw)})')
        return np.array([value is not None and float(value) > 0.5
                         for value in _row_ids(raw[self._space], rows, self._space)], bool)

    def process(self, batch: types.Extracts) -> Iterable[types.Extracts]:
        rows = len(batch[tfma.INPUT_KEY])
        kept = {key: _dense(batch.get(key), rows, key) for key in _KEPT}
        raw = batch.get(tfma.FEATURES_KEY) or {}
        columns = [_row_values(raw[name], rows, name) if name in raw else [()] * rows
                   for name in self._features]
        in_space = self._in_space(raw, rows)
        groups = collections.defaultdict(list)
        for row, key in enumerate(zip(*columns) if columns else [()] * rows):
            if in_space[row]:
                groups[key].append(row)
        ids = {name: _row_ids(raw[name], rows, name) for name in self._group_columns
               if name in raw}
        for key, members in groups.items():
            features = {name: np.array(values) for name, values in zip(self._features, key)
                        if values}
            slice_keys = set(slicer_lib.get_slices_for_features_dicts([], features, self._specs))
            member_rows = np.asarray(members)
            group = {name: _take(value, member_rows) for name, value in kept.items()}
            if ids:
                group[tfma.FEATURES_KEY] = {name: values[member_rows]
                                            for name, values in ids.items()}
            group[tfma.SLICE_KEY_TYPES_KEY] = slicer_lib.slice_keys_to_numpy_array(
                list(slice_keys))
            yield group


def labels_and_predictions(element: metric_types.StandardMetricInputs, eval_config,
                           model_name: str = '', output_name: str = '',
                           example_weighted: bool = False):
    """An extract's labels, predictions and example weights (one per example, whether the extract
    holds one example or a group) as float64 arrays."""
    (label, prediction, weight), = metric_util.to_label_prediction_example_weight(
        element, eval_config=eval_config, model_name=model_name, output_name=output_name,
        example_weighted=example_weighted, flatten=False, squeeze=False)
    label = np.asarray(label, np.float64).ravel()
    prediction = np.asarray(prediction, np.float64).ravel()
    weight = np.asarray(weight, np.float64).ravel()
    return label, prediction, np.broadcast_to(weight, prediction.shape)


class ArraysCombiner(beam.CombineFn):
    """Collects the arrays of each input element (a tuple of `columns` arrays, one entry per
    example), column by column, over a slice's extracts: for the metrics that need every example
    at once (intervals, the group AUC). `output(*columns)` gives the metrics from the whole
    columns."""

    columns = 3

    def create_accumulator(self) -> List[List[np.ndarray]]:
        """No arrays yet, per column."""
        return [[] for _ in range(self.columns)]

    def add_input(self, accumulator, element):
        """Adds an extract's arrays, one per column."""
        for column, values in zip(accumulator, element):
            column.append(values)
        return accumulator

    def merge_accumulators(self, accumulators):
        """All the accumulators' arrays, column by column."""
        result = self.create_accumulator()
        for accumulator in accumulators:
            for column, values in zip(result, accumulator):
                column.extend(values)
        return result

    def compact(self, accumulator):
        """One array per column, for the shuffle between workers."""
        return [[np.concatenate(column)] if column else [] for column in accumulator]

    def extract_output(self, accumulator):
        """`output` of the whole columns."""
        return self.output(*(np.concatenate(column) if column else np.zeros(0)
                             for column in accumulator))

    def output(self, *columns):
        """The metrics from the whole columns (subclasses)."""
        raise NotImplementedError


class _WeightedSums(beam.CombineFn):
    """Sums `terms(labels, predictions)` (one value per example), weighted, and the weights, over
    a slice's extracts of any size. The sums are exact (`math.fsum` of every example's term), so
    that they do not depend on how Beam batched and combined the examples, which varies from run
    to run: the same data and model give the same value to the last bit."""

    def __init__(self, key: metric_types.MetricKey, eval_config, terms, finish):
        self._key, self._eval_config = key, eval_config
        self._terms, self._finish = terms, finish

    def create_accumulator(self):
        return [], []  # weighted terms, weights: arrays

    def add_input(self, accumulator, element):
        key = self._key
        label, prediction, weight = labels_and_predictions(
            element, self._eval_config, key.model_name, key.output_name, key.example_weighted)
        accumulator[0].append(self._terms(label, prediction) * weight)
        accumulator[1].append(weight)
        return accumulator

    def merge_accumulators(self, accumulators):
        result = self.create_accumulator()
        for terms, weights in accumulators:
            result[0].extend(terms)
            result[1].extend(weights)
        return result

    def compact(self, accumulator):
        return tuple([np.concatenate(arrays)] if arrays else [] for arrays in accumulator)

    def extract_output(self, accumulator) -> Dict[metric_types.MetricKey, float]:
        terms, weights = (math.fsum(np.concatenate(arrays)) if arrays else 0.0
                          for arrays in accumulator)
        return {self._key: self._finish(terms, weights)}


def _count_terms(label, prediction):
    del label
    return np.ones_like(prediction)


def _count(total, weights):
    del weights
    return float(total)


# Keras' clipping of probabilities (tf_keras.backend.epsilon()).
_EPSILON = 1e-7


def _cross_entropy_terms(label, prediction):
    prediction = np.clip(prediction, _EPSILON, 1 - _EPSILON)
    return -(label * np.log(prediction + _EPSILON)
             + (1 - label) * np.log(1 - prediction + _EPSILON))


def _mean(total, weights):
    return float(total / weights) if weights else float('nan')


# What each metric sums per example, and its value from the weighted sum and the weights.
_SUMS = {'count': (_count_terms, _count), 'cross_entropy': (_cross_entropy_terms, _mean)}


def _sum_computations(name: str, kind: str, eval_config: Optional[config_pb2.EvalConfig] = None,
                      model_names: Optional[List[str]] = None,
                      output_names: Optional[List[str]] = None,
                      example_weighted: bool = False) -> metric_types.MetricComputations:
    terms, finish = _SUMS[kind]
    computations = []
    for model_name in model_names or ['']:
        for output_name in output_names or ['']:
            key = metric_types.MetricKey(name=name, model_name=model_name,
                                         output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=None,
                combiner=_WeightedSums(key, eval_config, terms, finish)))
    return computations


class GroupedExampleCount(metric_types.Metric):
    """TFMA's `example_count` (the examples, or their weights when example-weighted), counting
    the examples in each extract, not the extracts."""

    def __init__(self, name: str = 'example_count'):
        super().__init__(_sum_computations, name=name, kind='count')


class GroupedBinaryCrossentropy(metric_types.Metric):
    """The Keras metric `binary_crossentropy` (predicted probabilities, clipped as Keras clips
    them), averaged over the examples of all extracts."""

    def __init__(self, name: str = 'binary_crossentropy'):
        super().__init__(_sum_computations, name=name, kind='cross_entropy')


metric_types.register_metric(GroupedExampleCount)
metric_types.register_metric(GroupedBinaryCrossentropy)
