"""Training: Keras' `fit` over the plan's evaluations, with early stopping on what
`training.early_stopping_metric` names (the validation loss by default; early_stopping.py),
TensorBoard logs and progress lines; the steps it planned, ran and kept, the validation metrics of
each evaluation, and the tasks' learned log-variances."""

import dataclasses
import logging
from typing import Dict, List

import tf_keras as keras

from compat import autograph  # noqa: F401  (autograph leaves Keras' train step alone)
from trainer_module import early_stopping as monitors
from trainer_module.callbacks import (
    MeanOfTasks,
    ProgressLog,
    TaskUncertaintyLog,
    task_log_variances,
)
from trainer_module.plan import TrainingInputs
from trainer_module.settings import PROGRESS_LOGGER, TrainerSettings

PROGRESS = logging.getLogger(PROGRESS_LOGGER)


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """The steps planned, run and kept ({'planned', 'kept', 'run'}: the model holds the weights
    after step 'kept'), {task: learned log-variance} (`task_log_variances`), the entry of the
    validation logs early stopping watched (`val_loss`, `val_ctr_auc`, `val_auc`) and
    `validation`: each validation log entry's value at each evaluation, in order."""
    steps: Dict[str, int]
    log_variances: Dict[str, float]
    monitored: str = 'val_loss'
    validation: Dict[str, List[float]] = dataclasses.field(default_factory=dict)


def train(model: keras.Model, inputs: TrainingInputs, settings: TrainerSettings,
          log_dir: str) -> TrainingResult:
    """Trains the compiled `model` on `inputs` (`read_splits`) as its plan says, writing
    TensorBoard logs into `log_dir`, and keeps the weights of the evaluation where what
    `training.early_stopping_metric` names was best."""
    plan = inputs.plan
    monitor = monitors.resolve(settings.training.early_stopping_metric, settings.tasks)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=monitor.key, mode=monitor.mode, patience=plan.patience, restore_best_weights=True)
    history = model.fit(
        inputs.train,
        steps_per_epoch=plan.steps_per_evaluation,
        epochs=plan.evaluations,
        validation_data=inputs.evaluation,
        validation_steps=inputs.validation_steps,
        verbose=0,
        callbacks=[
            # Before TensorBoard, which writes what they add, and EarlyStopping, which reads it.
            TaskUncertaintyLog(settings),
            *([MeanOfTasks(monitor)] if monitor.is_mean else []),
            keras.callbacks.TensorBoard(log_dir=log_dir, update_freq='epoch'),
            early_stopping,
            ProgressLog(plan.steps, plan.steps_per_evaluation, settings.training.log_every_steps),
        ])
    kept_step = (early_stopping.best_epoch + 1) * plan.steps_per_evaluation
    PROGRESS.info('Trainer keeps the weights after step %d (%s %.4f)', kept_step,
                  monitor.description, early_stopping.best)
    log_variances = task_log_variances(model, settings)
    if log_variances:
        PROGRESS.info('Trainer learned log-variances (uncertainty loss weighting): %s', '  '.join(
            f'{task} {value:.3f}' for task, value in log_variances.items()))
    return TrainingResult(
        steps={'planned': plan.steps, 'kept': kept_step,
               'run': len(history.epoch) * plan.steps_per_evaluation},
        log_variances=log_variances, monitored=monitor.key,
        validation={key: [float(value) for value in values]
                    for key, values in history.history.items() if key.startswith('val_')})
