"""The Trainer's Keras callbacks: progress lines (`ProgressLog`), the tasks' learned
log-variances in the epoch logs (`TaskUncertaintyLog`) and the mean of the tasks' metric that
early stopping watches (`MeanOfTasks`)."""

import logging
from typing import Dict

import tf_keras as keras

from trainer_module.settings import PROGRESS_LOGGER, TrainerSettings

PROGRESS = logging.getLogger(PROGRESS_LOGGER)


class ProgressLog(keras.callbacks.Callback):
    """Logs the step and running loss once `every` more steps have run, and the validation metrics
    after each epoch. Keras calls back once per execution (`steps_per_execution` steps), with the
    index of its last step in the epoch."""

    def __init__(self, total_steps, steps_per_epoch, every):
        super().__init__()
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.every = every
        self.epoch = 0
        self.step = 0

    def on_epoch_begin(self, epoch, logs=None):
        """Notes the epoch: Keras numbers batches from 0 in each."""
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        """Logs the step and running loss when `every` more steps have run, and at the last."""
        previous, self.step = self.step, self.epoch * self.steps_per_epoch + batch + 1
        if self.step // self.every > previous // self.every or self.step == self.total_steps:
            PROGRESS.info('Trainer step %d/%d  loss %.4f', self.step, self.total_steps,
                          logs['loss'])

    def on_epoch_end(self, epoch, logs=None):
        """Logs the validation metrics (the `val_` entries of `logs`)."""
        evaluated = '  '.join(f'{k[4:]} {v:.4f}' for k, v in sorted(logs.items())
                              if k.startswith('val_'))
        PROGRESS.info('Trainer validation after step %d: %s', self.step, evaluated)


def task_log_variances(model, settings: TrainerSettings) -> Dict[str, float]:
    """{task: learned log-variance} under `training.loss_weighting: uncertainty`, else {}."""
    uncertainty = getattr(model, 'task_uncertainty', None)
    if uncertainty is None:
        return {}
    return {task: round(float(value), 6)
            for task, value in zip(settings.task_names, uncertainty.log_variance.numpy())}


class TaskUncertaintyLog(keras.callbacks.Callback):
    """Adds each task's learned log-variance to the epoch's logs (`log_variance_<task>`), which
    the TensorBoard callback after it writes."""

    def __init__(self, settings: TrainerSettings):
        super().__init__()
        self.settings = settings

    def on_epoch_end(self, epoch, logs=None):
        """Adds `log_variance_<task>` to the epoch's `logs`."""
        for task, value in task_log_variances(self.model, self.settings).items():
            logs[f'log_variance_{task}'] = value


class MeanOfTasks(keras.callbacks.Callback):
    """Adds to the epoch's logs the mean of the tasks' entries that `monitor` (an
    `early_stopping.Monitor`) averages, as its key (`val_auc`: the mean of `val_<task>_auc`), and
    the same of the training entries (`auc`). Before EarlyStopping, which reads it, and
    TensorBoard, which writes it."""

    def __init__(self, monitor):
        super().__init__()
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs=None):
        """Adds the means of the validation entries, and of the training ones where Keras logged
        them."""
        validation = [(self.monitor.key, self.monitor.terms)]
        training = [(key[len('val_'):], tuple(term[len('val_'):] for term in terms))
                    for key, terms in validation]
        for key, terms in validation + training:
            if all(term in logs for term in terms):
                logs[key] = sum(float(logs[term]) for term in terms) / len(terms)
