"""What a task type and an evaluation metric are: the two definitions the rest of the project asks.

A `TaskType` (binary.py, regression.py) holds everything a task's type decides: the model's output
(DeepCTR's `task_types` entry), the training loss and metrics, the metrics its Evaluator reports,
the metrics it can be gated on and those given a confidence interval. A `Metric` holds what the
gates, the intervals and the dashboards need of one evaluation metric: its TFMA key and class, its
direction, its range, and its interval and paired change interval.

Everything here loads without TensorFlow (the config, which every command line loads, checks task
types and gates against these definitions): Keras classes are named, and made only when asked.
"""

import dataclasses
import importlib
import math
from typing import Callable, Optional, Tuple

from trainer_module.task_types.statistics import Interval

# interval(labels, predictions, groups, confidence) and change_interval(labels, candidate,
# baseline, groups, confidence): arrays with one entry per eval example; `groups` holds each
# example's group id (the `evaluation.group_by` column) for the metrics that need one, else None.
IntervalFunction = Callable[..., Interval]


@dataclasses.dataclass(frozen=True)
class Metric:
    """One evaluation metric as the gates, intervals and dashboards see it.

    `name` is its TFMA metric key and the config's name for it (`gate.metric: auc`); `tfma_class`
    names the TFMA metric that computes its value (TFMA's own, or one of ours that
    pipeline/evaluation.py maps to its module). `higher_is_better` is None for a metric that is
    best at a target (calibration: 1) rather than at one end. `value_range` is where its values
    lie; a bound outside it could never refuse a model. `max_decrease_limit` is the largest change
    bound that can still refuse a model better than chance. `needs_groups`: computed within the
    groups of `evaluation.group_by`.
    """
    name: str
    title: str
    tfma_class: str
    higher_is_better: Optional[bool]
    value_range: Tuple[float, float]
    interval: IntervalFunction
    change_interval: Optional[IntervalFunction] = None
    max_decrease_limit: float = math.inf
    needs_groups: bool = False
    # A value floor (higher-is-better metrics) or ceiling applied when the gate names none; None
    # where there is no sensible default (an MSE ceiling depends on the label's scale).
    default_bound: Optional[float] = None

    @property
    def direction(self) -> str:
        """'higher' or 'lower' (is better), as the BlessingGate's change test reads it."""
        return 'higher' if self.higher_is_better else 'lower'


@dataclasses.dataclass(frozen=True)
class TrainingMetric:
    """A metric Keras computes while the Trainer trains, on each batch and on the whole validation
    split at each evaluation: `keras_class` names its tf_keras class, `name` its entry in the
    training logs (`<task>_<name>`, `val_<task>_<name>` for the validation split), which
    `training.early_stopping_metric` may name; `higher_is_better` is the direction early stopping
    watches it in."""
    keras_class: str
    name: str
    higher_is_better: bool

    @property
    def mode(self) -> str:
        """Keras' `EarlyStopping` mode: 'max' or 'min'."""
        return 'max' if self.higher_is_better else 'min'


def _keras(module: str, name: str):
    return getattr(importlib.import_module(f'tf_keras.{module}'), name)


@dataclasses.dataclass(frozen=True)
class TaskType:
    """One kind of task.

    `deepctr_task` is the model output's DeepCTR task type (PredictionLayer: sigmoid for 'binary',
    identity for 'regression'). `loss` names a tf_keras class; `training_metrics` are what Keras
    reports in the training logs, which early stopping may watch. `reported_metrics` are the TFMA
    metrics (class names) its Evaluator computes and shows without gating on them.
    `gated_metrics` are the metrics a task of this type may be gated on, the default first;
    `interval_metrics` are given intervals beside the gated one. `calibration` is the metric a
    task's calibration bound reads, None where predictions are not probabilities.
    `uncertainty_scale` scales the loss under the uncertainty weighting (`layers.TaskUncertainty`):
    1 for a likelihood, 1/2 for a Gaussian's squared error.
    """
    name: str
    deepctr_task: str
    loss: str
    training_metrics: Tuple[TrainingMetric, ...]
    reported_metrics: Tuple[str, ...]
    gated_metrics: Tuple[Metric, ...]
    interval_metrics: Tuple[Metric, ...] = ()
    calibration: Optional[Metric] = None
    uncertainty_scale: float = 1.0
    # Labels must be 0 or 1 (checked on the data before training: AnomalyCheck).
    binary_labels: bool = False

    @property
    def default_metric(self) -> Metric:
        """The metric a task of this type is gated on unless its gate names another."""
        return self.gated_metrics[0]

    def gated_metric(self, name: Optional[str]) -> Metric:
        """The gated metric `name` (the default for None); KeyError when this type has none."""
        if name is None:
            return self.default_metric
        for metric in self.gated_metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

    def make_loss(self):
        """A new tf_keras loss of this type."""
        return _keras('losses', self.loss)()

    def training_metric(self, name: str) -> TrainingMetric:
        """The training metric `name`; KeyError when this type has none."""
        for metric in self.training_metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

    def make_training_metrics(self) -> list:
        """New tf_keras metrics of this type, as the training logs name them."""
        return [_keras('metrics', metric.keras_class)(name=metric.name)
                for metric in self.training_metrics]

    def metrics_with_intervals(self, gated: Metric, grouped: bool) -> Tuple[Metric, ...]:
        """The metrics given an interval for a task gated on `gated`: the gated one first, then
        this type's others (those within groups only when `grouped`)."""
        others = [m for m in self.interval_metrics + ((self.calibration,) if self.calibration
                                                      else ())
                  if m.name != gated.name and (grouped or not m.needs_groups)]
        return (gated, *others)


def ignoring_groups(function: Callable[..., Interval]) -> IntervalFunction:
    """An interval function as `Metric` calls it, (labels, predictions..., groups, confidence),
    from one of a metric over all examples, (labels, predictions..., confidence)."""
    def interval(labels, *arguments):
        *predictions, _, confidence = arguments
        return function(labels, *predictions, confidence)
    return interval
