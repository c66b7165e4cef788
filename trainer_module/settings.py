"""What the Trainer reads, and the names the pipeline and the model side share.

`TrainerSettings` is the Trainer's `custom_config`: the features, the tasks' outputs and losses, the
MMOE arguments and the training settings, and nothing else. The pipeline's config
(`pipeline/config.py`) embeds `ModelConfig` and `TrainingConfig` and projects itself onto
`TrainerSettings`, so that a change the Trainer does not read (a gate bound, a slice, a drift bound)
leaves the Trainer's execution cached. This module imports nothing heavier than the standard
library: the config and its error messages load before TensorFlow does.
"""

import dataclasses
import os
from typing import Any, Dict, Optional, Tuple

from trainer_module import features
from trainer_module.features import CrossFeature, DenseFeature, SequenceFeature, SparseFeature

# tf.distribute strategies the Trainer can train with; 'multi_worker_mirrored' reads the cluster
# from the TF_CONFIG environment variable.
DISTRIBUTIONS = ('none', 'mirrored', 'multi_worker_mirrored')
# How the tasks' losses add up: by their fixed `loss_weight`s, or each also weighted by a learned
# variance (Kendall, Gal and Cipolla, CVPR 2018; `layers.TaskUncertainty`).
LOSS_WEIGHTINGS = ('fixed', 'uncertainty')
# What a warm start does when the base model's features, tasks or architecture differ from the
# config's (trainer_module/warm_start.py): stop the run naming the difference, or train from scratch.
WARM_START_MISMATCHES = ('fail', 'cold_start')
# The Trainer's arithmetic (Keras mixed-precision policies): 'mixed_bfloat16' computes in bfloat16
# and keeps the variables, the predictions and so the exported model's outputs in float32.
PRECISIONS = ('float32', 'mixed_bfloat16')
# Beside the SavedModel in the Trainer's model artifact: each task's mean gate weight per expert.
GATE_REPORT_DIR = 'gate_report'
GATE_REPORT_FILE = 'gates.json'  # in GATE_REPORT_DIR: gate weights, gate use, expert similarity
# Beside the SavedModel: each vocabulary's size and share of OOV values per split.
VOCABULARY_REPORT_FILE = 'vocabularies.json'
# The logger whose records a runner shows on the terminal (everything else goes to the log file).
PROGRESS_LOGGER = 'mmoe.progress'
# Inside the exported SavedModel (so in every pushed copy): what decided the model, as JSON.
PROVENANCE_FILE = os.path.join('assets.extra', 'provenance.json')
# The SavedModel's signature on raw feature values by name, for JSON clients (trainer_module/serving.py).
RAW_SIGNATURE = 'serving_raw'


@dataclasses.dataclass(frozen=True)
class TaskHead:
    """One output of the model: its name, label column, DeepCTR task type and loss weight;
    `sample_space`: the label column whose rows at 1 it is trained on (its loss is 0 elsewhere),
    None for every row."""
    name: str
    label: str
    type: str = 'binary'
    loss_weight: float = 1.0
    sample_space: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The model's arguments: DeepCTR's MMOE's with its defaults, and PLE's own (task_types and
    task_names come from the tasks).

    `architecture` picks the model (trainer_module/architectures.py, which says which fields each
    takes): 'mmoe', the paper's baselines 'omoe' (one gate for every task) and 'shared_bottom'
    (DeepCTR's SharedBottom: `expert_dnn_hidden_units` is its bottom DNN), 'ple' (DeepCTR's PLE:
    `num_levels` extraction levels of `specific_expert_num` experts per task and
    `shared_expert_num` shared ones) and 'esmm' (DeepCTR's ESMM: a ctr and a cvr tower of
    `tower_dnn_hidden_units` on the embeddings; no experts, no gates). The defaults are the same
    for every architecture, MMOE's where DeepCTR's differ (its PLE's experts are (256,), its
    ESMM's towers (256, 128, 64)), so that switching architectures changes nothing else.
    """
    architecture: str = 'mmoe'
    num_experts: int = 3
    shared_expert_num: int = 1
    specific_expert_num: int = 1
    num_levels: int = 2
    expert_dnn_hidden_units: Tuple[int, ...] = (256, 128)
    tower_dnn_hidden_units: Tuple[int, ...] = (64,)
    gate_dnn_hidden_units: Tuple[int, ...] = ()
    l2_reg_embedding: float = 1e-5
    l2_reg_dnn: float = 0.0
    seed: int = 1024
    dnn_dropout: float = 0.0
    dnn_activation: str = 'relu'
    dnn_use_bn: bool = False


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Training makes `epochs` passes over the training split, at most `train_steps` batches when
    that is set. It evaluates on the whole validation split `evaluations_per_epoch` times a pass,
    and stops early once what `early_stopping_metric` names has not improved for
    `early_stopping_patience` passes, keeping the weights of the evaluation where it was best: a
    patience in passes, not in evaluations, gives every embedding row its updates before a plateau
    counts, and does not stop on the ups and downs of a few batches. `early_stopping_metric`:
    'loss' (the validation loss the model trains on), '<task>.<metric>' (one task's training
    metric on the validation split: 'ctr.auc') or '<metric>' (its mean over every task: 'auc');
    trainer_module/early_stopping.py.
    `batch_size` is the global batch: under a `distribution` it is split across the replicas.
    `steps_per_execution` batches run per call into the TensorFlow graph (Keras'
    `steps_per_execution`): fewer calls from Python, at the cost of coarser progress lines.
    `intra_op_parallelism_threads` is TensorFlow's setting of that name for the Trainer (0: one
    thread per core): at 1, each op runs on one thread while independent ops still run side by
    side, which for a model and batch of this size beats splitting every small matmul across
    cores (measured in bench/trainer_throughput.py; raise it for much wider layers or batches).
    A training split whose parsed rows would take more than `max_memory_mb` (0: any) is streamed
    from its files through a shuffle buffer of `shuffle_buffer_rows` rows; a smaller one is loaded
    into memory and shuffled whole each pass.
    `deterministic` turns on TensorFlow's op determinism: with the model's seed and the same data,
    the same machine trains the same weights (docs/reproducibility.md).
    `loss_weighting`: 'fixed' adds the tasks' losses times their `loss_weight`; 'uncertainty' also
    learns a log-variance per task that weights its loss (`layers.TaskUncertainty`), reported in
    the run summary and TensorBoard.
    `warm_start`: start from the weights of the Trainer's base model (the model that serves, which
    the pipeline gives the Trainer as `base_model`) rather than from the initializers: every
    weight copied but the embeddings, whose rows are carried over by token where the vocabulary
    changed (trainer_module/warm_start.py); with no base model (nothing serves yet) it trains from
    scratch. `warm_start_mismatch`: what it does when the base model's features, tasks or
    architecture differ from this config's: 'fail' stops the run naming the difference,
    'cold_start' warns naming it and trains from scratch (WARM_START_MISMATCHES).
    `window_spans` is read by the pipeline, not here: where the data is by span
    (pipeline/spans.py), the Trainer learns from the last `window_spans` spans before the one the
    run judges on.
    `precision`: 'float32', or 'mixed_bfloat16' (PRECISIONS): the layers compute in bfloat16 where
    the CPU has bfloat16 instructions (AVX-512 BF16, AMX) while the weights, the optimizer and the
    predictions stay float32, so the exported model takes and returns what a float32 one does
    (docs/model.md#precision)."""
    epochs: float = 10.0
    train_steps: Optional[int] = None
    evaluations_per_epoch: int = 4
    early_stopping_patience: float = 1.0
    early_stopping_metric: str = 'loss'
    steps_per_execution: int = 25
    intra_op_parallelism_threads: int = 1
    batch_size: int = 256
    learning_rate: float = 1e-3
    log_every_steps: int = 50
    max_memory_mb: int = 2048
    shuffle_buffer_rows: int = 200_000
    distribution: str = 'none'
    deterministic: bool = True
    loss_weighting: str = 'fixed'
    warm_start: bool = False
    warm_start_mismatch: str = 'fail'
    window_spans: int = 7
    precision: str = 'float32'


class TaskColumns:
    """The names, types and labels of a config's `tasks`, in task order."""
    tasks: Tuple

    @property
    def task_names(self) -> Tuple[str, ...]:
        """Each task's name."""
        return tuple(task.name for task in self.tasks)

    @property
    def task_types(self) -> Tuple[str, ...]:
        """Each task's type (trainer_module/task_types/)."""
        return tuple(task.type for task in self.tasks)

    @property
    def label_columns(self) -> Tuple[str, ...]:
        """Each task's label column."""
        return tuple(task.label for task in self.tasks)


@dataclasses.dataclass(frozen=True)
class TrainerSettings(TaskColumns):
    """Everything `trainer_module.run.run_fn` reads, as the Trainer's custom_config carries it."""
    sparse_features: Tuple[SparseFeature, ...]
    dense_features: Tuple[DenseFeature, ...]
    tasks: Tuple[TaskHead, ...]
    num_oov_buckets: int = 1
    sequence_features: Tuple[SequenceFeature, ...] = ()
    cross_features: Tuple[CrossFeature, ...] = ()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()

    def to_dict(self) -> Dict[str, Any]:
        """The settings as nested dicts (`dataclasses.asdict`), for the Trainer's custom_config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> 'TrainerSettings':
        """The inverse of `to_dict`, also after a JSON round trip (lists for tuples)."""
        return cls(
            **features.from_dicts(values),
            tasks=tuple(TaskHead(**t) for t in values['tasks']),
            num_oov_buckets=values['num_oov_buckets'],
            model=ModelConfig(**_tuples(values['model'])),
            training=TrainingConfig(**values['training']))


def _tuples(values: Dict[str, Any]) -> Dict[str, Any]:
    """`values` with its lists as tuples (the dataclasses' own types, lost by JSON)."""
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in values.items()}
