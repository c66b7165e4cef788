"""training.loss_weighting: uncertainty (Kendall, Gal and Cipolla, CVPR 2018) learns a larger
variance for a noisier task, and reports it in the epoch logs that TensorBoard writes."""

import numpy as np
import tf_keras as keras

from trainer_module.build import build_model
from trainer_module.callbacks import TaskUncertaintyLog, task_log_variances
from trainer_module.feature_column import DenseFeat
from trainer_module.settings import DenseFeature, ModelConfig, TaskHead, TrainerSettings, TrainingConfig


def settings(loss_weighting, task_type='regression'):
    return TrainerSettings(
        sparse_features=(), dense_features=(DenseFeature('x'),),
        tasks=(TaskHead('clean', 'clean', task_type), TaskHead('noisy', 'noisy', task_type)),
        model=ModelConfig(expert_dnn_hidden_units=(16,), tower_dnn_hidden_units=()),
        training=TrainingConfig(loss_weighting=loss_weighting, learning_rate=0.02,
                                steps_per_execution=1))


def test_uncertainty_learns_a_larger_variance_for_the_noisier_task():
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2048, 1)).astype('float32')
    labels = {'clean': x + rng.normal(scale=0.1, size=x.shape), 'noisy': x + rng.normal(size=x.shape)}
    run_settings = settings('uncertainty')
    model = build_model(run_settings, [DenseFeat('x')])
    assert any('log_variance' in w.name for w in model.trainable_weights)
    history = model.fit({'x': x}, labels, batch_size=64, epochs=8, verbose=0,
                        callbacks=[TaskUncertaintyLog(run_settings)])
    learned = task_log_variances(model, run_settings)
    assert history.history['log_variance_noisy'][-1] == learned['noisy']
    # At its optimum a regression task's variance is its mean squared error: ~0.01 and ~1.
    assert learned['noisy'] > learned['clean'] + 2
    assert abs(learned['noisy']) < 0.7 and learned['clean'] < -2.5, learned


def test_fixed_weighting_has_no_learned_variances():
    model = build_model(settings('fixed', 'binary'), [DenseFeat('x')])
    assert task_log_variances(model, settings('fixed')) == {}
    assert not any('log_variance' in w.name for w in model.weights)
