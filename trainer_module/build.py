"""The Trainer's model: the architecture `settings.model` names, in the precision
`settings.training.precision` names, compiled with a loss and a metric per task and the optimizer
`settings.training` configures."""

import contextlib

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
    with precision_policy(settings.training.precision):
        model = build_architecture(settings.model, feature_columns, settings.task_types,
                                   settings.task_names)
    not_float32 = [output.name for output in model.outputs if output.dtype != 'float32']
    if not_float32:  # an architecture whose prediction layers forgot dtype='float32'
        raise TypeError(f'{settings.model.architecture}: outputs {not_float32} are not float32 '
                        f'under training.precision {settings.training.precision!r}')
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


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras' global dtype policy set to `precision` (a Keras mixed-precision policy name) while
    layers are made inside the block: each layer keeps the policy it was made under, and the
    policy is global, so it is put back afterwards."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)
