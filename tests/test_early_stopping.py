"""What the Trainer's early stopping watches (`training.early_stopping_metric`,
trainer_module/early_stopping.py): the setting resolved against the tasks' types and refused naming
the key, and `training.train` keeping the weights of the evaluation where the watched value was best
(the validation loss, or the tasks' mean AUC) on a small two-output model."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from pipeline.config import ConfigError, PipelineConfig
from trainer_module import early_stopping
from trainer_module.plan import TrainingInputs, TrainingPlan
from trainer_module.settings import TaskHead, TrainerSettings, TrainingConfig
from trainer_module.task_types import TASK_TYPES
from trainer_module.training import train

TASKS = (TaskHead('ctr', 'click'), TaskHead('ctcvr', 'purchase'))
MIXED = (TaskHead('ctr', 'click'), TaskHead('watch', 'watch_time', type='regression'))


def test_the_default_watches_the_validation_loss():
    assert TrainingConfig().early_stopping_metric == 'loss'
    monitor = early_stopping.resolve('loss', TASKS)
    assert (monitor.key, monitor.mode, monitor.is_mean) == ('val_loss', 'min', False)


def test_a_tasks_metric_is_its_validation_entry_in_its_types_direction():
    ctr = early_stopping.resolve('ctr.auc', TASKS)
    assert (ctr.key, ctr.mode, ctr.is_mean) == ('val_ctr_auc', 'max', False)
    watch = early_stopping.resolve('watch.rmse', MIXED)
    assert (watch.key, watch.mode) == ('val_watch_rmse', 'min')
    # The direction is the task type's: the registry says it, not the setting's text.
    assert TASK_TYPES['binary'].training_metric('auc').higher_is_better
    assert not TASK_TYPES['regression'].training_metric('rmse').higher_is_better


def test_a_metric_alone_is_its_mean_over_every_task():
    mean = early_stopping.resolve('auc', TASKS)
    assert (mean.key, mean.mode, mean.terms, mean.is_mean) == (
        'val_auc', 'max', ('val_ctr_auc', 'val_ctcvr_auc'), True)
    # With one output Keras names the metric without the output's name: the mean is that entry.
    one = early_stopping.resolve('auc', TASKS[:1])
    assert (one.key, one.is_mean) == ('val_auc', False)


@pytest.mark.parametrize('setting, message', [
    ('accuracy', "'accuracy': tasks ['ctr', 'watch'] have no training metric 'accuracy'"),
    ('auc', "'auc': task ['watch'] has no training metric 'auc'"),
    ('watch.auc', "'watch.auc': a regression task has no training metric 'auc' (it has ['rmse'])"),
    ('click.auc', "'click.auc': 'click' is not a task (tasks ['ctr', 'watch'])"),
    ('', "must be 'loss', a task's metric as '<task>.<metric>'"),
])
def test_a_setting_the_tasks_cannot_give_is_refused_saying_what_they_can(setting, message):
    with pytest.raises(ValueError) as error:
        early_stopping.resolve(setting, MIXED)
    assert str(error.value).startswith(message)


def test_the_config_refuses_it_naming_the_key():
    assert PipelineConfig().with_overrides(
        ['training.early_stopping_metric=ctcvr.auc']).trainer_settings().training \
        .early_stopping_metric == 'ctcvr.auc'
    with pytest.raises(ConfigError, match=r"^training.early_stopping_metric: 'ctr.rmse': a binary "
                                          r"task has no training metric 'rmse'"):
        PipelineConfig().with_overrides(['training.early_stopping_metric=ctr.rmse'])


def _inputs(steps_per_evaluation=4, evaluations=8, batch=32, seed=0):
    """A small two-task problem whose validation AUCs and loss go up and down from one evaluation
    to the next: noisy labels, a validation split of its own, a learning rate that overshoots."""
    rng = np.random.default_rng(seed)

    def rows(n):
        x = rng.normal(size=(n, 6)).astype('float32')
        click = (x[:, 0] + 1.5 * rng.normal(size=n) > 0.5).astype('float32')
        purchase = click * (x[:, 1] + 1.5 * rng.normal(size=n) > 0).astype('float32')
        return {'x': x}, {'ctr': click[:, None], 'ctcvr': purchase[:, None]}

    train_x, train_y = rows(steps_per_evaluation * evaluations * batch)
    val_x, val_y = rows(512)
    plan = TrainingPlan(steps=steps_per_evaluation * evaluations,
                        steps_per_evaluation=steps_per_evaluation, patience=evaluations,
                        in_memory=True)
    return TrainingInputs(
        train=tf.data.Dataset.from_tensor_slices((train_x, train_y)).batch(batch).repeat(),
        evaluation=tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(128),
        plan=plan, validation_steps=4, fingerprints={})


def _model(seed=0):
    """Two sigmoid outputs on a shared layer, compiled as build.build_model compiles ours."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,), name='x')
    hidden = keras.layers.Dense(16, activation='relu')(inputs)
    outputs = {task.name: keras.layers.Dense(1, activation='sigmoid', name=task.name)(hidden)
               for task in TASKS}
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.legacy.Adam(0.05),
                  loss={task.name: TASK_TYPES[task.type].make_loss() for task in TASKS},
                  metrics={task.name: TASK_TYPES[task.type].make_training_metrics()
                           for task in TASKS})
    return model


def _settings(metric):
    return TrainerSettings(sparse_features=(), dense_features=(), tasks=TASKS,
                           training=TrainingConfig(early_stopping_metric=metric))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """{setting: (TrainingResult, the kept model's validation logs)}: the same model, data and
    seed trained watching the loss, then the tasks' mean AUC (whose terms are each task's AUC as
    Keras logs it: `ctr.auc` watches one of them)."""
    results = {}
    for metric in ('loss', 'auc'):
        inputs, model = _inputs(), _model()
        result = train(model, inputs, _settings(metric), str(tmp_path_factory.mktemp('logs')))
        results[metric] = result, model.evaluate(inputs.evaluation, verbose=0, return_dict=True)
    return results


@pytest.mark.parametrize('metric, key, best', [
    ('loss', 'val_loss', np.argmin), ('auc', 'val_auc', np.argmax)])
def test_the_kept_weights_are_those_of_the_best_evaluation_of_what_it_watches(
        trained, metric, key, best):
    result, kept = trained[metric]
    plan = _inputs().plan
    values = result.validation[key]
    assert result.monitored == key and len(values) == plan.evaluations  # patience: no early stop
    assert result.steps['kept'] == (best(values) + 1) * plan.steps_per_evaluation
    # The model holds that evaluation's weights: evaluated again, it gives the best value.
    again = kept[key[len('val_'):]] if key != 'val_auc' else (kept['ctr_auc'] + kept['ctcvr_auc']) / 2
    assert again == pytest.approx(values[best(values)], abs=1e-5)
    if key == 'val_auc':  # the mean of the tasks' entries, which Keras writes
        assert values == pytest.approx([(ctr + ctcvr) / 2 for ctr, ctcvr in zip(
            result.validation['val_ctr_auc'], result.validation['val_ctcvr_auc'])])


def test_watching_the_auc_keeps_a_better_auc_than_watching_the_loss(trained):
    """On this problem the lowest validation loss is not where the AUC peaks: the two settings keep
    different weights, and the AUC monitor's have the higher mean validation AUC."""
    by_loss, by_auc = trained['loss'], trained['auc']
    assert by_loss[0].steps['kept'] != by_auc[0].steps['kept']
    assert (by_auc[1]['ctr_auc'] + by_auc[1]['ctcvr_auc']
            > by_loss[1]['ctr_auc'] + by_loss[1]['ctcvr_auc'])
