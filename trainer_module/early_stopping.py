"""What the Trainer's early stopping watches (`training.early_stopping_metric`), resolved against
the tasks and their types' training metrics (trainer_module/task_types/).

The setting is one of:

- `loss` (the default): the validation loss the model trains on, the tasks' losses times their
  `loss_weight`s (and their learned weights under `loss_weighting: uncertainty`);
- `<task>.<metric>`: one task's training metric on the validation split, e.g. `ctr.auc`;
- `<metric>`: the mean of that training metric over every task, e.g. `auc` with two binary tasks;
  every task's type must have it (a regression task has no AUC: name a task instead).

A metric is one its task's type reports while training (`TaskType.training_metrics`: `auc` for a
binary task, `rmse` for a regression), watched in its direction (the highest AUC, the lowest RMSE).
The Trainer keeps the weights of the evaluation where it was best and stops once it has not
improved for `early_stopping_patience` passes, as with the loss.

Loads without TensorFlow: the config checks the setting when it is read.
"""

import dataclasses
from typing import Sequence, Tuple

from trainer_module.task_types import task_type

LOSS = 'loss'


@dataclasses.dataclass(frozen=True)
class Monitor:
    """What early stopping reads in Keras' epoch logs: `key` (a `val_` entry), in `mode` ('min'
    or 'max'); `terms`: the validation entries whose mean it is (`(key,)` where Keras writes it
    itself, else one per task: `callbacks.MeanOfTasks` adds the mean); `description`: what it is,
    for the Trainer's log lines."""
    key: str
    mode: str
    terms: Tuple[str, ...]
    description: str

    @property
    def is_mean(self) -> bool:
        """Whether the key is a mean the Trainer adds to the logs, not an entry Keras writes."""
        return self.terms != (self.key,)


def task_metric_key(task: str, metric: str, task_names: Sequence[str]) -> str:
    """The training log's entry of `task`'s `metric` (Keras prefixes a metric with its output's name
    when a model has several outputs), without the `val_` of the validation split's."""
    return f'{task}_{metric}' if len(task_names) > 1 else metric


def resolve(setting: str, tasks: Sequence) -> Monitor:
    """The Monitor of `setting` (training.early_stopping_metric) for `tasks` (each with a `name`
    and a `type`); a ValueError saying what the setting may be otherwise."""
    names = [task.name for task in tasks]
    types = {task.name: task_type(task.type) for task in tasks}
    available = sorted({metric.name for kind in types.values() for metric in kind.training_metrics})
    allowed = (f"'{LOSS}', a task's metric as '<task>.<metric>' (tasks {names}; metrics "
               f"{available}) or a metric of every task as '<metric>'")
    if not isinstance(setting, str) or not setting:
        raise ValueError(f'must be {allowed}, got {setting!r}')
    if setting == LOSS:
        return Monitor('val_loss', 'min', ('val_loss',), 'validation loss')
    task, dot, metric = setting.rpartition('.')
    if dot:
        if task not in types:
            raise ValueError(f'{setting!r}: {task!r} is not a task (tasks {names})')
        try:
            mode = types[task].training_metric(metric).mode
        except KeyError:
            raise ValueError(f'{setting!r}: a {types[task].name} task has no training metric '
                             f'{metric!r} (it has '
                             f'{[m.name for m in types[task].training_metrics]})') from None
        key = 'val_' + task_metric_key(task, metric, names)
        return Monitor(key, mode, (key,), f'validation {task} {metric}')
    without = [name for name, kind in types.items()
               if metric not in [m.name for m in kind.training_metrics]]
    if without:
        raise ValueError(f'{setting!r}: {"task" if len(without) == 1 else "tasks"} {without} '
                         f'{"has" if len(without) == 1 else "have"} no training metric {metric!r};'
                         f' it must be {allowed}')
    modes = {types[name].training_metric(metric).mode for name in names}
    if len(modes) > 1:  # the same name in two task types, watched in opposite directions
        raise ValueError(f'{setting!r}: the tasks\' types watch {metric!r} in opposite directions;'
                         " name one task's: '<task>.<metric>'")
    terms = tuple('val_' + task_metric_key(name, metric, names) for name in names)
    # With several outputs, Keras writes no `val_<metric>` of its own: the mean takes that name.
    return Monitor(f'val_{metric}', modes.pop(), terms,
                   f'validation {metric}, the mean of {", ".join(names)}' if len(names) > 1
                   else f'validation {names[0]} {metric}')
