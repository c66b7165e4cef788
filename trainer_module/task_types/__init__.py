"""Task types, one definition each (base.TaskType): what a task's `type` means for the model's
output, its loss and training metrics, its Evaluator's metrics, the metrics it can be gated on and
their intervals. The Trainer, the config, the Evaluators' configs, the gate, the dashboards and the
run summary ask these; a new task type is a module here and an entry in TASK_TYPES.
"""

from typing import Dict, Mapping

from trainer_module.task_types.base import Metric, TaskType, TrainingMetric
from trainer_module.task_types.binary import BINARY
from trainer_module.task_types.regression import REGRESSION

TASK_TYPES: Mapping[str, TaskType] = {kind.name: kind for kind in (BINARY, REGRESSION)}
# Every metric a task can be gated on or given an interval, by its TFMA key.
METRICS: Dict[str, Metric] = {
    metric.name: metric for kind in TASK_TYPES.values()
    for metric in kind.gated_metrics + kind.interval_metrics
    + ((kind.calibration,) if kind.calibration else ())}


def task_type(name: str) -> TaskType:
    """The task type `name`; KeyError naming the known ones otherwise."""
    try:
        return TASK_TYPES[name]
    except KeyError:
        raise KeyError(f'{name!r} is not one of {tuple(TASK_TYPES)}') from None


__all__ = ['METRICS', 'TASK_TYPES', 'Metric', 'TaskType', 'TrainingMetric', 'task_type']
