"""How long the Trainer trains, how often it evaluates, and when it streams the training split
instead of loading it: `TrainingPlan` on sizes alone, the streamed batches on a small file."""

import dataclasses

import numpy as np

from trainer_module.data import evaluation_batches, make_dataset, read_split, row_bytes, streamed_batches
from trainer_module.plan import TrainingPlan
from trainer_module.settings import TrainingConfig

import multi_worker_train as w

# The rules TrainingPlan.make applies, from which each expected count below is derived:
#   a pass = ceil(rows / batch_size) steps; the budget = ceil(epochs x a pass), capped by
#   train_steps; evaluations at most period = ceil(a pass / evaluations_per_epoch) steps apart, so
#   ceil(budget / period) of them, each floor(budget / evaluations) steps long (Keras epochs are of
#   equal length: the steps left over are not trained); patience = ceil(early_stopping_patience x
#   a pass / period) evaluations.


def test_the_budget_is_passes_over_the_training_split():
    plan = TrainingPlan.make(rows=16_000, bytes_per_row=100, training=TrainingConfig())
    # A pass: ceil(16,000 / 256) = 63 steps; budget 10 x 63 = 630; period ceil(63 / 4) = 16;
    # ceil(630 / 16) = 40 evaluations of floor(630 / 40) = 15 steps: 600 steps trained.
    assert (plan.steps, plan.steps_per_evaluation, plan.evaluations) == (600, 15, 40)
    assert plan.patience == 4  # ceil(1 x 63 / 16): a pass of evaluations without improvement
    bigger = TrainingPlan.make(rows=800_000, bytes_per_row=100, training=TrainingConfig())
    # A pass: 3,125 steps; budget 31,250; period 782; 40 evaluations of 781 steps: 31,240;
    # patience ceil(3,125 / 782) = 4.
    assert (bigger.steps, bigger.steps_per_evaluation, bigger.patience) == (31_240, 781, 4)


def test_train_steps_caps_the_budget_and_fractional_epochs_count():
    capped = TrainingPlan.make(16_000, 100, TrainingConfig(train_steps=100))
    # Budget min(630, 100) = 100; period 16; ceil(100 / 16) = 7 evaluations of 14 steps: 98.
    assert (capped.steps, capped.steps_per_evaluation) == (98, 14)
    half = TrainingPlan.make(16_000, 100, TrainingConfig(epochs=0.5))
    # Budget ceil(0.5 x 63) = 32; period 16: 2 evaluations of 16 steps; patience still a pass.
    assert (half.steps, half.steps_per_evaluation, half.patience) == (32, 16, 4)
    patient = TrainingPlan.make(16_000, 100, TrainingConfig(early_stopping_patience=2.5))
    assert patient.patience == 10  # ceil(2.5 x 63 / 16) = ceil(9.84)


def test_a_split_larger_than_the_memory_budget_is_streamed():
    training = TrainingConfig(max_memory_mb=10)
    assert TrainingPlan.make(10 * 2**20 // 64, 64, training).in_memory
    assert not TrainingPlan.make(10 * 2**20 // 64 + 1, 64, training).in_memory
    assert not TrainingPlan.make(1, 64, TrainingConfig(max_memory_mb=0)).in_memory


def test_row_bytes_of_transformed_features():
    assert row_bytes(w.SPEC) == 8 + 4 + 4 + 4


def test_streamed_batches_draw_every_row_in_a_seeded_order(tmp_path):
    path = str(tmp_path / 'train.gz')
    w.write_examples(path, rows=100)
    settings = dataclasses.replace(w.SETTINGS, training=dataclasses.replace(
        w.SETTINGS.training, distribution='none', batch_size=25, shuffle_buffer_rows=100))
    assert read_split([path], w.SPEC, max_bytes=0).count == 100

    def first_batches(count):
        batches = streamed_batches([path], w.SPEC, settings, w.columns()).take(count)
        return [features['price'].numpy().ravel() for features, _ in batches]

    in_file_order = np.concatenate(
        [features['price'].numpy().ravel() for features, _ in make_dataset(
            [path], w.SPEC, settings, w.columns(), training=False)])
    two_passes = np.concatenate(first_batches(8))
    # A buffer as large as the split: every row once a pass, each pass in another order.
    for one_pass in (two_passes[:100], two_passes[100:]):
        assert sorted(one_pass.tolist()) == sorted(in_file_order.tolist())
        assert not np.array_equal(one_pass, in_file_order)
    assert not np.array_equal(two_passes[:100], two_passes[100:])
    # Seeded: the same order again.
    np.testing.assert_array_equal(two_passes, np.concatenate(first_batches(8)))
    features, labels = next(iter(streamed_batches([path], w.SPEC, settings, w.columns())))
    assert features['user'].shape == (25, 1) and labels['ctr'].shape == (25, 1)


def test_a_split_is_read_once_into_memory_within_the_budget_else_only_counted(tmp_path):
    path = str(tmp_path / 'train.gz')
    w.write_examples(path, rows=100)
    held = read_split([path], w.SPEC, max_bytes=100 * row_bytes(w.SPEC))
    streamed = read_split([path], w.SPEC, max_bytes=100 * row_bytes(w.SPEC) - 1)
    assert held.count == streamed.count == 100
    assert held.fingerprint == streamed.fingerprint
    assert held.rows['price'].shape == (100,) and streamed.rows is None
    # The rows held are the split's, in the order of their fingerprints, not the files'.
    in_file_order = np.concatenate(
        [features['price'].numpy().ravel() for features, _ in make_dataset(
            [path], w.SPEC, w.SETTINGS, w.columns(), training=False)])
    assert sorted(held.rows['price'].numpy().tolist()) == sorted(in_file_order.tolist())
    reversed_path = str(tmp_path / 'reversed.gz')
    w.write_examples(reversed_path, rows=100, reverse=True)
    np.testing.assert_array_equal(read_split([reversed_path], w.SPEC).rows['price'],
                                  held.rows['price'])


def test_evaluation_batches_are_one_pass_over_the_rows_in_memory(tmp_path):
    path = str(tmp_path / 'validation.gz')
    w.write_examples(path, rows=70)
    rows = read_split([path], w.SPEC).rows
    settings = dataclasses.replace(w.SETTINGS, training=dataclasses.replace(
        w.SETTINGS.training, distribution='none', batch_size=32))
    batches = list(evaluation_batches(rows, settings, w.columns()))
    assert [labels['ctr'].shape[0] for _, labels in batches] == [32, 32, 6]
    np.testing.assert_array_equal(
        np.concatenate([features['price'].numpy().ravel() for features, _ in batches]),
        rows['price'].numpy())
