"""Confidence intervals of the gated metrics, and of the candidate's change from the baseline, on
the same eval examples: a TFMA metric that each Evaluator computes beside TFMA's own.

TFMA 0.47 can put intervals on every metric (`compute_confidence_intervals`: a 20-bucket delete-d
jackknife or a 20-sample Poisson bootstrap, always at 95%), and its diff metrics are then paired;
but its validator checks the point estimate only (`metrics_validator.validate_metrics` compares
`float(metric)` with the bound), and it resamples every metric and plot 20 times. So the intervals
here are computed directly, from both models' predictions for each eval example, by each metric's
own method (its definition in trainer_module/task_types/: DeLong for AUC, a bootstrap over groups
for the group AUC, the delta method for calibration, the normal interval of a mean for the squared
error).

They need every example's label and predictions (and group id, for the group AUC): the combiner
keeps them per slice, which suits eval splits up to a few million rows.

They are written as TFMA metrics `<metric>_interval` (the candidate's value and interval; with a
baseline, a diff key for the change of the gated metric) whose values carry TFMA's
`confidence_interval`; the BlessingGate decides on them (`change_test: significant`, calibration
bounds), the dashboards show them.
"""

from typing import Dict, Iterable, Optional

import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2, metrics_for_slice_pb2
from tensorflow_model_analysis.utils import model_util

from components.grouped_evaluation import ArraysCombiner, group_ids, labels_and_predictions
from trainer_module.task_types import METRICS, TASK_TYPES

SUFFIX = '_interval'


def interval_name(metric: str) -> str:
    """The TFMA metric name of `metric`'s interval, e.g. `auc_interval`."""
    return metric + SUFFIX


# ---------------------------------------------------------------------------------------------
# The TFMA metric


class Intervals(metric_types.Metric):
    """`<metric>_interval` for a task of `task_type` gated on `gated`: the gated metric and the
    type's other metrics with intervals (those within groups when `group_by` names the groups),
    and the gated metric's change, at `confidence` (two-sided)."""

    def __init__(self, task_type: str = 'binary', gated: Optional[str] = None,
                 confidence: float = 0.95, group_by: Optional[str] = None,
                 sample_space: Optional[str] = None, name: str = 'intervals'):
        # The sample space is read from this metric's config by the grouped extractor, which
        # keeps its examples alone (components/grouped_evaluation.py); TFMA passes it here too.
        del sample_space
        super().__init__(self._computations, task_type=task_type, gated=gated,
                         confidence=confidence, group_by=group_by, name=name)

    @staticmethod
    def _computations(task_type: str, gated: Optional[str], confidence: float,
                      group_by: Optional[str], eval_config: config_pb2.EvalConfig,
                      model_names: Iterable[str], output_names: Iterable[str] = ('',),
                      name: str = 'intervals') -> metric_types.MetricComputations:
        del name
        kind = TASK_TYPES[task_type]
        gated_metric = kind.gated_metric(gated)
        metrics = kind.metrics_with_intervals(gated_metric, grouped=group_by is not None)
        baseline = model_util.get_baseline_model_spec(eval_config)
        baseline_name = baseline.name if baseline else None
        computations = []
        for model_name in model_names:
            if model_name == baseline_name:
                continue
            for output_name in output_names or ('',):
                wanted = [(metric.name, False) for metric in metrics]
                if baseline_name is not None:
                    wanted.append((gated_metric.name, True))
                keys = {(metric, change): metric_types.MetricKey(
                            name=interval_name(metric), model_name=model_name,
                            output_name=output_name, is_diff=change)
                        for metric, change in wanted}
                computations.append(metric_types.MetricComputation(
                    keys=list(keys.values()),
                    preprocessors=[_LabelsAndPredictions(eval_config, model_name, baseline_name,
                                                         output_name, group_by)],
                    combiner=_IntervalsCombiner(keys, confidence)))
        return computations


class _LabelsAndPredictions(metric_types.Preprocessor):
    """Per extract (one example or a group of them): (labels, candidate predictions, baseline
    predictions, group ids), arrays (the last two empty without a baseline or groups). TFMA runs
    preprocessors once per extract, before it fans the extracts out to their slices: reading
    labels and predictions here is not repeated per slice."""

    def __init__(self, eval_config, model_name, baseline_name, output_name, group_by):
        super().__init__(name=f'_intervals_inputs_{model_name}_{baseline_name}_{output_name}')
        self._eval_config, self._output_name = eval_config, output_name
        self._model_name, self._baseline_name = model_name, baseline_name
        self._group_by = group_by

    def process(self, extracts):
        inputs = metric_util.to_standard_metric_inputs(extracts)
        labels, candidate, _ = labels_and_predictions(inputs, self._eval_config,
                                                      self._model_name, self._output_name)
        baseline = (labels_and_predictions(inputs, self._eval_config, self._baseline_name,
                                           self._output_name)[1]
                    if self._baseline_name is not None else np.zeros(0))
        groups = (group_ids(extracts, self._group_by) if self._group_by is not None
                  else np.zeros(0, dtype=object))
        yield labels, candidate, baseline, groups


class _IntervalsCombiner(ArraysCombiner):
    """The intervals of a slice's labels, candidate and baseline predictions and group ids."""

    columns = 4

    def __init__(self, keys, confidence):
        self._keys, self._confidence = keys, confidence

    def output(self, labels, candidate, baseline, groups
               ) -> Dict[metric_types.MetricKey, object]:
        groups = groups if len(groups) else None
        computed = {}
        for (name, change), key in self._keys.items():
            metric = METRICS[name]
            if change:
                # Only metrics with a change interval get a change key (their Metric says so).
                assert metric.change_interval is not None
                computed[key] = metric.change_interval(labels, candidate, baseline, groups,
                                                       self._confidence)
            else:
                computed[key] = metric.interval(labels, candidate, groups, self._confidence)
        # A BoundedValue is written as the value with TFMA's `confidence_interval`.
        return {key: metrics_for_slice_pb2.BoundedValue(
                    value={'value': interval.value}, lower_bound={'value': interval.lower},
                    upper_bound={'value': interval.upper})
                for key, interval in computed.items()}


metric_types.register_metric(Intervals)
