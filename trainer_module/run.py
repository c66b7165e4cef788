"""The Trainer's `run_fn`: trains the MMOE on the transformed examples and exports a SavedModel.

The SavedModel's signatures:
- `serving_default`: serialized raw `tf.Example`s (`examples`) -> the Transform graph, then the
  model; one output per task, named after it (TFMA and gRPC clients call it);
- `serving_raw` (`RAW_SIGNATURE`): the same on one tensor per raw feature, by name, for JSON clients
  such as TF Serving's REST API (trainer_module/serving.py);
- `transform_features`: the Transform graph alone on `examples` (labels included), for TFMA;
- `gate_weights`: each gate's weights over the experts on `examples`, {task: [batch, num_experts]}.

The model is saved without its layers' call traces: it is read through these signatures
(`tf.saved_model.load`), not rebuilt by `keras.models.load_model`.

Beside the SavedModel, `gate_report/` holds each task's mean gate weight per expert on the
validation split (`gates.json`, `gates.png`): whether the tasks share experts or split them;
`gates.json` also has each gate's entropy and top expert's share, the experts' pairwise output
similarity and warnings of expert collapse (`trainer_module.expert_use`).
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import tempfile
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer_module.expert_use import expert_use_report
from trainer_module.feature_column import DenseFeat, feature_columns_from_transform
from trainer_module.layers import TaskUncertainty
from trainer_module.models import MMOE, OMoE, SharedBottom, gate_weights_model, has_gates
from trainer_module.serving import parsed_features, raw_input_specs
from trainer_module.settings import (GATE_REPORT_DIR, GATE_REPORT_FILE, PROGRESS_LOGGER,
                                     PROVENANCE_FILE, RAW_SIGNATURE, TrainerSettings)

PROGRESS = logging.getLogger(PROGRESS_LOGGER)

# Examples parsed per call when the training split is loaded.
_LOAD_CHUNK = 65536
# Rows are ordered by a 64-bit fingerprint of their values: strings hashed with FarmHash (the same
# on every platform), every value's bits folded in with FNV-1a's multiplier.
_FINGERPRINT_RANGE = 2 ** 63 - 1
_FNV_PRIME = np.uint64(0x100000001b3)


def model_inputs(transformed, feature_columns):
    """Transformed [batch] features -> the model's inputs: [batch, dimension] in each column's dtype."""
    return {
        column.name: tf.reshape(tf.cast(transformed[column.name], column.dtype),
                                [-1, column.dimension if isinstance(column, DenseFeat) else 1])
        for column in feature_columns
    }


def _inputs_and_labels(features, settings: TrainerSettings, feature_columns):
    labels = {task.name: tf.reshape(features[task.label], [-1, 1]) for task in settings.tasks}
    return model_inputs(features, feature_columns), labels


def shuffled_batches(examples, count: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches of rows of `examples` (a structure of [count, ...] tensors), forever: each pass
    draws every row once in a new random order, and batches are gathered from memory, so
    tf.data's cost per element is paid once per batch, not once per example. Fewer rows than a
    batch are drawn several times a pass."""
    draws = -(-batch_size // count)  # ceil: a pass must fill at least one batch
    batches_per_pass = draws * count // batch_size

    def one_pass(index):
        order = tf.concat([
            tf.random.experimental.stateless_shuffle(
                tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64), index * draws + i]))
            for i in range(draws)], axis=0)
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[:batches_per_pass * batch_size], [batches_per_pass, batch_size]))

    return tf.data.Dataset.counter().flat_map(one_pass).map(
        lambda rows: tf.nest.map_structure(lambda tensor: tf.gather(tensor, rows), examples),
        num_parallel_calls=tf.data.AUTOTUNE)


def _records(file_patterns) -> tf.data.Dataset:
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    return tf.data.TFRecordDataset(files, compression_type='GZIP')


def row_fingerprints(rows: Dict[str, tf.Tensor]) -> np.ndarray:
    """A 64-bit fingerprint of each row of {feature: [rows, ...]}, from its values, not from how
    its record was serialized (a tf.Example's features may be written in any order)."""
    count = int(next(iter(rows.values())).shape[0])
    fingerprints = np.zeros(count, np.uint64)
    for name in sorted(rows):
        values = rows[name].numpy().reshape(count, -1)
        if values.dtype.kind in 'OSU':
            words = tf.strings.to_hash_bucket_fast(values, _FINGERPRINT_RANGE).numpy()
        else:
            words = values.view(f'u{values.dtype.itemsize}')
        for column in words.astype(np.uint64).T:
            fingerprints = (fingerprints ^ column) * _FNV_PRIME  # wraps around, as FNV-1a does
    return fingerprints


def _digest(fingerprints: np.ndarray) -> str:
    """sha256 of a split's sorted row fingerprints: the same for the same rows, whatever the files
    and the order they came in."""
    return hashlib.sha256(np.sort(fingerprints).tobytes()).hexdigest()


def _parsed(file_patterns, spec):
    """The split's records parsed, a chunk at a time (one chunk in memory at a time)."""
    for chunk in _records(file_patterns).batch(_LOAD_CHUNK):
        yield tf.io.parse_example(chunk, spec)


def row_bytes(spec) -> int:
    """Bytes a parsed row of `spec` takes in memory (a string counted as 64)."""
    return sum(max(1, int(np.prod(feature.shape or [1]))) * (64 if feature.dtype == tf.string
                                                             else feature.dtype.size)
               for feature in spec.values())


def memory_budget(training) -> int:
    """Bytes of parsed rows the Trainer may hold in memory (`training.max_memory_mb`)."""
    return training.max_memory_mb * 2**20


@dataclasses.dataclass(frozen=True)
class Split:
    """A split read once (`read_split`): its number of rows, its fingerprint (sha256 of its rows'
    sorted fingerprints: the same for the same rows, whatever the files and their order), and its
    rows parsed, {feature: [count, ...]}, when they fit the memory budget (else None)."""
    count: int
    fingerprint: str
    rows: Optional[Dict[str, tf.Tensor]]


def read_split(file_patterns, spec, max_bytes: Optional[int] = None) -> Split:
    """Reads and parses a split once: counts and fingerprints its rows, and keeps them in memory
    if they take at most `max_bytes` (None: any size), else parses on, a chunk at a time, only to
    count and fingerprint them.

    Rows kept come in an order of their own values (each row's fingerprint), so that the batches
    drawn from them, and the model, do not depend on the order in which Beam happened to write the
    records, which varies with the runner and its number of workers."""
    bytes_per_row = row_bytes(spec)
    chunks, fingerprints, count = [], [], 0
    for chunk in _parsed(file_patterns, spec):
        fingerprints.append(row_fingerprints(chunk))
        count += len(fingerprints[-1])
        if chunks is not None and (max_bytes is None or count * bytes_per_row <= max_bytes):
            chunks.append(chunk)
        else:
            chunks = None  # over the budget: what was kept goes
    fingerprints = np.concatenate(fingerprints) if fingerprints else np.zeros(0, np.uint64)
    rows = None
    if chunks:
        order = np.argsort(fingerprints, kind='stable')
        rows = {name: tf.gather(tf.concat([chunk[name] for chunk in chunks], axis=0), order)
                for name in spec}
    return Split(count, _digest(fingerprints), rows)


def load_rows(file_patterns, spec) -> Tuple[Dict[str, tf.Tensor], str]:
    """A split's rows parsed into memory in the order of their fingerprints (`read_split`), and the
    split's fingerprint."""
    split = read_split(file_patterns, spec)
    if split.rows is None:
        raise ValueError(f'no training examples in {file_patterns}')
    return split.rows, split.fingerprint


def _with_options(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    # Across workers, split by batch: a split may have fewer files than there are workers.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def training_batches(rows, settings: TrainerSettings, feature_columns) -> tf.data.Dataset:
    """Shuffled (model inputs, {task: [batch, 1] label}) batches drawn from `load_rows`' rows,
    forever."""
    count = int(next(iter(rows.values())).shape[0])
    return _with_options(shuffled_batches(_inputs_and_labels(rows, settings, feature_columns),
                                          count, settings.training.batch_size, settings.model.seed))


def evaluation_batches(rows, settings: TrainerSettings, feature_columns) -> tf.data.Dataset:
    """One pass of (model inputs, labels) batches over `read_split`'s rows, in their order (the
    last batch may be smaller), sliced from memory: nothing is parsed again at each evaluation."""
    count = int(next(iter(rows.values())).shape[0])
    size = settings.training.batch_size
    examples = _inputs_and_labels(rows, settings, feature_columns)
    return _with_options(tf.data.Dataset.range(0, count, size).map(
        lambda start: tf.nest.map_structure(lambda tensor: tensor[start:start + size], examples)))


def streamed_batches(file_patterns, spec, settings: TrainerSettings,
                     feature_columns) -> tf.data.Dataset:
    """Shuffled (model inputs, labels) batches read from the split's files, forever, through a
    shuffle buffer of `training.shuffle_buffer_rows` records: for a split too large to load. Each
    pass reads every record once, in another seeded order."""
    training = settings.training
    return _with_options(
        _records(file_patterns)
        .shuffle(training.shuffle_buffer_rows, seed=settings.model.seed,
                 reshuffle_each_iteration=True)
        .repeat()
        .batch(training.batch_size, drop_remainder=True)
        .map(lambda serialized: _inputs_and_labels(tf.io.parse_example(serialized, spec),
                                                   settings, feature_columns),
             num_parallel_calls=tf.data.AUTOTUNE))


def make_dataset(file_patterns, spec, settings: TrainerSettings, feature_columns,
                 training: bool) -> tf.data.Dataset:
    """(model inputs, {task: [batch, 1] label}) batches from gzipped transformed TFRecords whose
    features `spec` describes (Transform's `transformed_feature_spec()`).

    Training loads the split into memory once (`load_rows`) and draws shuffled batches from it
    forever; evaluation makes one pass over the split's files, parsing each batch as it comes (for
    a split too large to hold: `evaluation_batches` evaluates on one held in memory).
    """
    if training:
        return training_batches(load_rows(file_patterns, spec)[0], settings, feature_columns)
    return _with_options(_records(file_patterns).batch(settings.training.batch_size).map(
        lambda serialized: _inputs_and_labels(tf.io.parse_example(serialized, spec), settings,
                                              feature_columns),
        num_parallel_calls=tf.data.AUTOTUNE))


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """How long to train and how often to evaluate, from the split's size and `training`."""
    steps: int
    steps_per_evaluation: int
    patience: int  # evaluations without improvement before stopping
    in_memory: bool

    @classmethod
    def make(cls, rows: int, bytes_per_row: int, training) -> 'TrainingPlan':
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
        return self.steps // self.steps_per_evaluation


def set_op_threads(threads: int) -> bool:
    """Gives TensorFlow's ops `threads` threads each (`training.intra_op_parallelism_threads`; 0: one
    per core). TensorFlow takes the setting once per process, when its first op runs: where it
    already ran with another (an orchestrator that ran other components in this process), that one
    stays and a warning says how to apply the config's. Returns whether `threads` is in effect."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        return True
    except RuntimeError:
        current = (tf.config.threading.get_intra_op_parallelism_threads()
                   or int(os.environ.get('TF_NUM_INTRAOP_THREADS', 0)))
        if current == threads:
            return True
        logging.getLogger(__name__).warning(
            'TensorFlow already runs in this process with %s intra-op threads, which it keeps: '
            'training.intra_op_parallelism_threads=%d applies where the Trainer starts TensorFlow, '
            'or start the process with TF_NUM_INTRAOP_THREADS=%d', current or 'one per core',
            threads, threads)
        return False


def distribution_strategy(distribution: str) -> tf.distribute.Strategy:
    """The strategy `training.distribution` names; 'multi_worker_mirrored' takes the cluster and
    this worker's role from TF_CONFIG. Create it before any other TensorFlow work."""
    if distribution == 'mirrored':
        return tf.distribute.MirroredStrategy()
    if distribution == 'multi_worker_mirrored':
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model: the only one, or the chief (or first worker) of a
    cluster."""
    resolver = getattr(strategy, 'cluster_resolver', None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == 'chief' or (
        resolver.task_type == 'worker' and resolver.task_id == 0
        and 'chief' not in resolver.cluster_spec().as_dict())


def build_model(settings: TrainerSettings, feature_columns) -> keras.Model:
    """The model of `settings.model` (MMOE unless its architecture says otherwise), compiled with a
    loss and metrics per task. With `training.loss_weighting: uncertainty` the model also holds the
    tasks' learned log-variances (`model.task_uncertainty`, a `TaskUncertainty`), which weight their
    losses."""
    arguments = _dataclass_dict(settings.model)
    architecture = arguments.pop('architecture')
    arguments.update(task_types=settings.task_types, task_names=settings.task_names)
    if architecture == 'shared_bottom':
        del arguments['num_experts'], arguments['gate_dnn_hidden_units']
        arguments['bottom_dnn_hidden_units'] = arguments.pop('expert_dnn_hidden_units')
        model = SharedBottom(feature_columns, **arguments)
    else:
        model = {'mmoe': MMOE, 'omoe': OMoE}[architecture](feature_columns, **arguments)
    uncertainty = None
    if settings.training.loss_weighting == 'uncertainty':
        uncertainty = TaskUncertainty(settings.task_types, name='task_uncertainty')
        uncertainty.build()
        model.task_uncertainty = uncertainty  # tracked: trained and saved with the model
    losses, metrics = {}, {}
    for i, task in enumerate(settings.tasks):
        if task.type == 'binary':
            losses[task.name] = keras.losses.BinaryCrossentropy()
            metrics[task.name] = [keras.metrics.AUC(name='auc')]
        else:
            losses[task.name] = keras.losses.MeanSquaredError()
            metrics[task.name] = [keras.metrics.RootMeanSquaredError(name='rmse')]
        if uncertainty:
            losses[task.name] = uncertainty.weighted_loss(i, losses[task.name])
    # The legacy Adam updates each variable with one fused op, the new one with about ten.
    optimizer = keras.optimizers.legacy.Adam(settings.training.learning_rate)
    model.compile(optimizer=optimizer, loss=losses,
                  loss_weights={task.name: task.loss_weight for task in settings.tasks},
                  metrics=metrics, steps_per_execution=settings.training.steps_per_execution)
    return model


def _dataclass_dict(instance):
    return {name: getattr(instance, name) for name in instance.__dataclass_fields__}


class _ProgressLog(keras.callbacks.Callback):
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
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        previous, self.step = self.step, self.epoch * self.steps_per_epoch + batch + 1
        if self.step // self.every > previous // self.every or self.step == self.total_steps:
            PROGRESS.info('Trainer step %d/%d  loss %.4f', self.step, self.total_steps, logs['loss'])

    def on_epoch_end(self, epoch, logs=None):
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


class _TaskUncertaintyLog(keras.callbacks.Callback):
    """Adds each task's learned log-variance to the epoch's logs (`log_variance_<task>`), which
    the TensorBoard callback after it writes."""

    def __init__(self, settings: TrainerSettings):
        super().__init__()
        self.settings = settings

    def on_epoch_end(self, epoch, logs=None):
        for task, value in task_log_variances(self.model, self.settings).items():
            logs[f'log_variance_{task}'] = value



def mean_gate_weights(model, dataset) -> dict:
    """{'examples': n, 'gates': {gate: [mean weight of expert i]}} over one pass of `dataset`."""
    gates = gate_weights_model(model)

    # In a graph: called eagerly, batch by batch, the model took 40 s for the 391 validation
    # batches of 1M rows (2 loaded cores).
    @tf.function(reduce_retracing=True)
    def batch_sums(inputs):
        return {name: tf.reduce_sum(weights, axis=0)
                for name, weights in gates(inputs, training=False).items()}

    sums, count = {}, 0
    for inputs, _ in dataset:
        for name, total in batch_sums(inputs).items():
            sums[name] = sums.get(name, 0.0) + total.numpy()
        count += int(next(iter(inputs.values())).shape[0])
    return {'examples': count, 'gates': {name: (total / count).round(6).tolist()
                                         for name, total in sums.items()}}


def write_gate_report(report: dict, out_dir: str):
    """GATE_REPORT_FILE (the report as JSON) and gates.png (a bar per task and expert) into
    `out_dir`."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, GATE_REPORT_FILE), 'w') as f:
        f.write(json.dumps(report, indent=2))
    gates = report['gates']
    num_experts = len(next(iter(gates.values())))
    width = 0.8 / len(gates)
    figure, axes = pyplot.subplots(figsize=(2.5 + 1.2 * num_experts, 3.5))
    for i, (name, weights) in enumerate(gates.items()):
        axes.bar([e + i * width for e in range(num_experts)], weights, width, label=name)
    axes.set_xticks([e + width * (len(gates) - 1) / 2 for e in range(num_experts)])
    axes.set_xticklabels([f'expert {e}' for e in range(num_experts)])
    axes.set_ylabel('mean gate weight (validation split)')
    axes.set_title(f'Gate weights over {report["examples"]} validation examples')
    axes.legend(title='task', bbox_to_anchor=(1.02, 1), loc='upper left')
    figure.tight_layout()
    with tf.io.gfile.GFile(os.path.join(out_dir, 'gates.png'), 'wb') as f:
        figure.savefig(f, format='png', dpi=100)
    pyplot.close(figure)


def export_serving_model(model, tf_transform_output, settings: TrainerSettings, feature_columns,
                         path):
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k not in settings.label_columns}
    examples = tf.TensorSpec([None], tf.string, name='examples')

    @tf.function(input_signature=[examples])
    def serve(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        outputs = model(model_inputs(transformed, feature_columns), training=False)
        return dict(zip(settings.task_names, outputs))

    @tf.function(input_signature=[raw_input_specs(serving_spec, settings.dense_features)])
    def serve_raw(features):
        transformed = model.tft_layer(parsed_features(features, serving_spec))
        outputs = model(model_inputs(transformed, feature_columns), training=False)
        return dict(zip(settings.task_names, outputs))

    @tf.function(input_signature=[examples])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

    signatures = {'serving_default': serve, RAW_SIGNATURE: serve_raw,
                  'transform_features': transform_features}
    if has_gates(model):
        model.gates = gate_weights_model(model)

        @tf.function(input_signature=[examples])
        def gate_weights(serialized):
            transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
            return model.gates(model_inputs(transformed, feature_columns), training=False)

        signatures['gate_weights'] = gate_weights
    # Without each layer's call traces (save_traces), which only keras.models.load_model uses to
    # rebuild the model without this package's code: every reader of the model here (TFMA as
    # TF_GENERIC, serving, the Pusher's checks) calls its signatures. The traces were more than
    # half of the export's time (13.7 s against 5.5 s on 2 cores).
    model.save(path, save_format='tf', signatures=signatures, save_traces=False)


# The packages whose versions decide what a run computes.
PACKAGES = ('tensorflow', 'tf-keras', 'tensorflow-transform', 'tensorflow-model-analysis', 'tfx',
            'apache-beam', 'numpy', 'mmoe-tfx-pipeline')


def write_provenance(fn_args: FnArgs, settings: TrainerSettings, fingerprints: Dict[str, str],
                     steps: Dict[str, int], log_variances: Dict[str, float]):
    """Writes into the SavedModel (PROVENANCE_FILE) what decided the model: the seed, the Trainer's
    settings, the steps planned and run and the step whose weights it kept, the tasks' learned
    log-variances (uncertainty loss weighting; else empty), the fingerprints of the training and
    validation splits ({'train', 'validation'}: `Split.fingerprint`), the package versions and the machine's architecture."""
    provenance = {
        'seed': settings.model.seed,
        'steps': steps,
        'task_log_variance': log_variances,
        'settings': settings.to_dict(),
        'data': fingerprints,
        'versions': {'python': platform.python_version(), 'machine': platform.machine(),
                     **{package: importlib.metadata.version(package) for package in PACKAGES}},
    }
    path = os.path.join(fn_args.serving_model_dir, PROVENANCE_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(json.dumps(provenance, indent=2, sort_keys=True))


def run_fn(fn_args: FnArgs):
    settings = TrainerSettings.from_dict(fn_args.custom_config)
    set_op_threads(settings.training.intra_op_parallelism_threads)
    strategy = distribution_strategy(settings.training.distribution)
    chief = is_chief(strategy)
    keras.utils.set_random_seed(settings.model.seed)
    if settings.training.deterministic:
        # For the rest of the process: TensorFlow has no switch back.
        tf.config.experimental.enable_op_determinism()
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_columns = feature_columns_from_transform(settings, tf_transform_output)
    spec = tf_transform_output.transformed_feature_spec()
    # Each split is read once: counted, fingerprinted and, within the memory budget, kept parsed.
    budget, bytes_per_row = memory_budget(settings.training), row_bytes(spec)
    train_split = read_split(fn_args.train_files, spec, budget)
    if not train_split.count:
        raise ValueError(f'no training examples in {fn_args.train_files}')
    plan = TrainingPlan.make(train_split.count, bytes_per_row, settings.training)
    if plan.in_memory:
        train = training_batches(train_split.rows, settings, feature_columns)
        budget -= train_split.count * bytes_per_row
    else:
        train = streamed_batches(fn_args.train_files, spec, settings, feature_columns)
    # The validation split is held in the budget's rest, else streamed at each evaluation.
    validation_split = read_split(fn_args.eval_files, spec, budget)
    if validation_split.rows is not None:
        evaluation = evaluation_batches(validation_split.rows, settings, feature_columns)
    else:
        evaluation = make_dataset(fn_args.eval_files, spec, settings, feature_columns, False)
    PROGRESS.info('Trainer: %d training rows %s, %d steps of %d (%.3g passes), evaluating every '
                  '%d steps on %d validation rows', train_split.count,
                  'in memory' if plan.in_memory else 'streamed from disk (over training.max_memory_mb)',
                  plan.steps, settings.training.batch_size,
                  plan.steps * settings.training.batch_size / train_split.count,
                  plan.steps_per_evaluation, validation_split.count)
    train_fingerprint = train_split.fingerprint
    del train_split  # its rows live on in `train`

    with strategy.scope():
        model = build_model(settings, feature_columns)
    early_stopping = keras.callbacks.EarlyStopping(
        monitor='val_loss', patience=plan.patience, restore_best_weights=True)
    # Every worker of a cluster writes (saving is collective); only the chief where it is kept.
    scratch = None if chief else tempfile.mkdtemp(prefix='mmoe-worker-')
    history = model.fit(
        train,
        steps_per_epoch=plan.steps_per_evaluation,
        epochs=plan.evaluations,
        validation_data=evaluation,
        # Keras needs the count to run several steps per execution.
        validation_steps=math.ceil(validation_split.count / settings.training.batch_size),
        verbose=0,
        callbacks=[
            _TaskUncertaintyLog(settings),  # before TensorBoard, which writes what it adds
            keras.callbacks.TensorBoard(log_dir=scratch or fn_args.model_run_dir,
                                        update_freq='epoch'),
            early_stopping,
            _ProgressLog(plan.steps, plan.steps_per_evaluation, settings.training.log_every_steps),
        ])
    kept_step = (early_stopping.best_epoch + 1) * plan.steps_per_evaluation
    PROGRESS.info('Trainer keeps the weights after step %d (validation loss %.4f)', kept_step,
                  early_stopping.best)
    log_variances = task_log_variances(model, settings)
    if log_variances:
        PROGRESS.info('Trainer learned log-variances (uncertainty loss weighting): %s', '  '.join(
            f'{task} {value:.3f}' for task, value in log_variances.items()))
    gate_report = None
    if has_gates(model):
        gate_report = mean_gate_weights(model, evaluation)
        PROGRESS.info('Trainer mean gate weights per expert: %s', '  '.join(
            f'{gate} [{" ".join(f"{w:.2f}" for w in weights)}]'
            for gate, weights in gate_report['gates'].items()))
        gate_report.update(expert_use_report(model, evaluation, gate_report['gates']))
        for warning in gate_report['warnings']:
            PROGRESS.warning('Trainer: %s', warning)
    export_serving_model(model, tf_transform_output, settings, feature_columns,
                         scratch or fn_args.serving_model_dir)
    if chief:
        write_provenance(fn_args, settings, {'train': train_fingerprint,
                                             'validation': validation_split.fingerprint},
                         {'planned': plan.steps, 'kept': kept_step,
                          'run': len(history.epoch) * plan.steps_per_evaluation}, log_variances)
        if gate_report:
            write_gate_report(gate_report, os.path.join(
                os.path.dirname(fn_args.serving_model_dir), GATE_REPORT_DIR))
    else:
        tf.io.gfile.rmtree(scratch)
