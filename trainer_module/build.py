"""The Trainer's model: the architecture `settings.model` names, compiled with a loss and a metric
per task and the optimizer `settings.training` configures."""

import tf_keras as keras

from trainer_module.architectures import build_architecture
from trainer_module.layers import TaskUncertainty
from trainer_module.settings import TrainerSettings
from trainer_module.task_types import TASK_TYPES


def build_model(settings: TrainerSettings, feature_columns) -> keras.Model:
    """The model of `settings.model` (MMOE unless its architecture says otherwise), compiled with a
    loss and metrics per task. With `training.loss_weighting: uncertainty` the model also holds the
    tasks' learned log-variances (`model.task_uncertainty`, a `TaskUncertainty`), which weight their
    losses."""
    model = build_architecture(settings.model, feature_columns, settings.task_types,
                               settings.task_names)
    uncertainty = None
    if settings.training.loss_weighting == 'uncertainty':
        uncertainty = TaskUncertainty(settings.task_types, name='task_uncertainty')
        uncertainty.build()
        model.task_uncertainty = uncertainty  # tracked: trained and saved with the model
    losses, metrics = {}, {}
    for i, task in enumerate(settings.tasks):
        kind = TASK_TYPES[task.type]
        losses[task.name] = kind.make_loss()
        metrics[task.name] = kind.make_training_metrics()
        if uncertainty:
            losses[task.name] = uncertainty.weighted_loss(i, losses[task.name])
    # The legacy Adam updates each variable with one fused op, the new one with about ten.
    optimizer = keras.optimizers.legacy.Adam(settings.training.learning_rate)
    # With a task's sample space, the batches carry sample weights (trainer_module/data.py), which
    # Keras applies to `weighted_metrics` only: its metrics then count its own rows alone.
    masked = any(task.sample_space for task in settings.tasks)
    model.compile(optimizer=optimizer, loss=losses,
                  loss_weights={task.name: task.loss_weight for task in settings.tasks},
                  **{'weighted_metrics' if masked else 'metrics': metrics},
                  steps_per_execution=settings.training.steps_per_execution)
    return model

