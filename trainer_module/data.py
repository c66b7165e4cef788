"""The Trainer's data: the transformed splits read, counted, fingerprinted and parsed
(`read_split`), and the batches of (model inputs, labels) drawn from them.

The transformed splits are gzipped TFRecords of tf.Examples whose features Transform's
`transformed_feature_spec()` describes. A split's rows are held in an order of their own values, so
that what is trained on does not depend on the order in which Beam wrote them.
"""

import dataclasses
import hashlib
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from trainer_module.feature_column import LENGTH_DTYPE, DenseFeat, VarLenSparseFeat
from trainer_module.settings import TrainerSettings

# Examples parsed per call when the training split is loaded.
_LOAD_CHUNK = 65536
# Rows are ordered by a 64-bit fingerprint of their values: strings hashed with FarmHash (the same
# on every platform), every value's bits folded in with FNV-1a's multiplier.
_FINGERPRINT_RANGE = 2 ** 63 - 1
_FNV_PRIME = np.uint64(0x100000001b3)


def model_inputs(transformed, feature_columns):
    """Transformed [batch] (or [batch, max_length]) features -> the model's inputs, each
    [batch, its width] in its column's dtype: a dense feature's dimension, a list's `maxlen`
    (with its length, [batch, 1], where the column names one), 1 for a sparse id."""
    inputs = {}
    for column in feature_columns:
        if isinstance(column, VarLenSparseFeat):
            width = column.maxlen
            if column.length_name is not None:
                inputs[column.length_name] = tf.reshape(
                    tf.cast(transformed[column.length_name], LENGTH_DTYPE), [-1, 1])
        else:
            width = column.dimension if isinstance(column, DenseFeat) else 1
        inputs[column.name] = tf.reshape(tf.cast(transformed[column.name], column.dtype),
                                         [-1, width])
    return inputs


def _inputs_and_labels(features, settings: TrainerSettings, feature_columns):
    """(model inputs, {task: [batch, 1] label}), and {task: [batch, 1] weight} when a task has a
    sample space: its label column's 0/1 there (Keras' sample weights mask the loss and the
    metrics of the rows outside), 1 elsewhere."""
    labels = {task.name: tf.reshape(features[task.label], [-1, 1]) for task in settings.tasks}
    inputs = model_inputs(features, feature_columns)
    if not any(task.sample_space for task in settings.tasks):
        return inputs, labels
    weights = {task.name: (tf.cast(tf.cast(tf.reshape(features[task.sample_space], [-1, 1]),
                                           tf.float32) > 0.5, tf.float32)
                           if task.sample_space else tf.ones_like(labels[task.name], tf.float32))
               for task in settings.tasks}
    return inputs, labels, weights


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
    chunks: Optional[List[Dict[str, tf.Tensor]]] = []
    chunk_fingerprints: List[np.ndarray] = []
    count = 0
    for chunk in _parsed(file_patterns, spec):
        chunk_fingerprints.append(row_fingerprints(chunk))
        count += len(chunk_fingerprints[-1])
        if chunks is not None and (max_bytes is None or count * bytes_per_row <= max_bytes):
            chunks.append(chunk)
        else:
            chunks = None  # over the budget: what was kept goes
    fingerprints = (np.concatenate(chunk_fingerprints) if chunk_fingerprints
                    else np.zeros(0, np.uint64))
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
