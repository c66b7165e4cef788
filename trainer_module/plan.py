"""How long the Trainer trains and what it holds in memory: the memory budget, `TrainingPlan`, and
the two splits read under them (`read_splits`).

Each split is read once: counted, fingerprinted and, within the memory budget, kept parsed. The
training split goes first into the budget; the validation split is held in the rest, else streamed
from its files at each evaluation.
"""

import dataclasses
import logging
import math
from typing import Dict

import tensorflow as tf

from trainer_module.data import (
    evaluation_batches,
    make_dataset,
    read_split,
    row_bytes,
    streamed_batches,
    training_batches,
)
from trainer_module.settings import PROGRESS_LOGGER, TrainerSettings

PROGRESS = logging.getLogger(PROGRESS_LOGGER)


def memory_budget(training) -> int:
    """Bytes of parsed rows the Trainer may hold in memory (`training.max_memory_mb`)."""
    return training.max_memory_mb * 2**20


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """How long to train and how often to evaluate, from the split's size and `training`."""
    steps: int
    steps_per_evaluation: int
    patience: int  # evaluations without improvement before stopping
    in_memory: bool

    @classmethod
    def make(cls, rows: int, bytes_per_row: int, training) -> 'TrainingPlan':
        """The plan for a training split of `rows` rows of `bytes_per_row` bytes each (`row_bytes`)
        under `training` (a TrainingConfig)."""
        steps_per_pass = max(1, math.ceil(rows / training.batch_size))
        steps = max(1, math.ceil(training.epochs * steps_per_pass))
        if training.train_steps is not None:
            steps = min(steps, training.train_steps)
        period = max(1, math.ceil(steps_per_pass / training.evaluations_per_epoch))
        # Keras epochs are of equal length: the fewest evaluations no further apart than
        # `period`, of at most `steps` steps in all.
        evaluations = math.ceil(steps / period)
        return cls(steps=evaluations * (steps // evaluations),
                   steps_per_evaluation=steps // evaluations,
                   patience=max(1, math.ceil(training.early_stopping_patience * steps_per_pass
                                             / period)),
                   in_memory=rows * bytes_per_row <= memory_budget(training))

    @property
    def evaluations(self) -> int:
        """How many times training stops to evaluate: Keras epochs of `steps_per_evaluation`."""
        return self.steps // self.steps_per_evaluation


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """What `read_splits` read: the training batches (model inputs, {task: [batch, 1] label}),
    forever; the validation batches, one pass; the plan; and each split's fingerprint
    ({'train', 'validation'}: `Split.fingerprint`)."""
    train: tf.data.Dataset
    evaluation: tf.data.Dataset
    plan: TrainingPlan
    validation_steps: int  # batches in a pass of `evaluation`
    fingerprints: Dict[str, str]


def read_splits(train_files, eval_files, spec, settings: TrainerSettings,
                feature_columns) -> TrainingInputs:
    """Reads the training and validation splits (gzipped transformed TFRecords matching
    `train_files` and `eval_files`, of Transform's feature spec `spec`) once each, plans the
    training on the training split's size, and logs the plan."""
    budget, bytes_per_row = memory_budget(settings.training), row_bytes(spec)
    train_split = read_split(train_files, spec, budget)
    if not train_split.count:
        raise ValueError(f'no training examples in {train_files}')
    plan = TrainingPlan.make(train_split.count, bytes_per_row, settings.training)
    if plan.in_memory:
        train = training_batches(train_split.rows, settings, feature_columns)
        budget -= train_split.count * bytes_per_row
    else:
        train = streamed_batches(train_files, spec, settings, feature_columns)
    validation_split = read_split(eval_files, spec, budget)
    if validation_split.rows is not None:
        evaluation = evaluation_batches(validation_split.rows, settings, feature_columns)
    else:
        evaluation = make_dataset(eval_files, spec, settings, feature_columns, False)
    PROGRESS.info('Trainer: %d training rows %s, %d steps of %d (%.3g passes), evaluating every '
                  '%d steps on %d validation rows', train_split.count,
                  'in memory' if plan.in_memory
                  else 'streamed from disk (over training.max_memory_mb)',
                  plan.steps, settings.training.batch_size,
                  plan.steps * settings.training.batch_size / train_split.count,
                  plan.steps_per_evaluation, validation_split.count)
    return TrainingInputs(
        train=train, evaluation=evaluation, plan=plan,
        # Keras needs the count to run several steps per execution.
        validation_steps=math.ceil(validation_split.count / settings.training.batch_size),
        fingerprints={'train': train_split.fingerprint,
                      'validation': validation_split.fingerprint})
