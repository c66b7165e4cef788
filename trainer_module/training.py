"""Training: Keras' `fit` over the plan's evaluations, with early stopping on the validation loss,
TensorBoard logs and progress lines; the steps it planned, ran and kept, and the tasks' learned
log-variances."""

import dataclasses
import logging
from typing import Dict

import tf_keras as keras

from trainer_module.callbacks import ProgressLog, TaskUncertaintyLog, task_log_variances
from trainer_module.plan import TrainingInputs
from trainer_module.settings import PROGRESS_LOGGER, TrainerSettings

PROGRESS = logging.getLogger(PROGRESS_LOGGER)


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """The steps planned, run and kept ({'planned', 'kept', 'run'}: the model holds the weights
    after step 'kept'), and {task: learned log-variance} (`task_log_variances`)."""
    steps: Dict[str, int]
    log_variances: Dict[str, float]


def train(model: keras.Model, inputs: TrainingInputs, settings: TrainerSettings,
          log_dir: str) -> TrainingResult:
    """Trains the compiled `model` on `inputs` (`read_splits`) as its plan says, writing
    TensorBoard logs into `log_dir`, and keeps the weights of its best validation loss."""
    plan = inputs.plan
    early_stopping = keras.callbacks.EarlyStopping(
        monitor='val_loss', patience=plan.patience, restore_best_weights=True)
    history = model.fit(
        inputs.train,
        steps_per_epoch=plan.steps_per_evaluation,
        epochs=plan.evaluations,
        validation_data=inputs.evaluation,
        validation_steps=inputs.validation_steps,
        verbose=0,
        callbacks=[
            TaskUncertaintyLog(settings),  # before TensorBoard, which writes what it adds
            keras.callbacks.TensorBoard(log_dir=log_dir, update_freq='epoch'),
            early_stopping,
            ProgressLog(plan.steps, plan.steps_per_evaluation, settings.training.log_every_steps),
        ])
    kept_step = (early_stopping.best_epoch + 1) * plan.steps_per_evaluation
    PROGRESS.info('Trainer keeps the weights after step %d (validation loss %.4f)', kept_step,
                  early_stopping.best)
    log_variances = task_log_variances(model, settings)
    if log_variances:
        PROGRESS.info('Trainer learned log-variances (uncertainty loss weighting): %s', '  '.join(
            f'{task} {value:.3f}' for task, value in log_variances.items()))
    return TrainingResult(
        steps={'planned': plan.steps, 'kept': kept_step,
               'run': len(history.epoch) * plan.steps_per_evaluation},
        log_variances=log_variances)
