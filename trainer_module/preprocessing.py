"""Transform's `preprocessing_fn`: each kind of feature transformed as its definition says
(`trainer_module/features/`), the vocabularies they share counted in one pass, labels as they are,
and the tensor helpers the kinds build on.

The transformed features keep their raw names. Rules for missing values, applied inside the TFT graph
and therefore identically in training and serving:
- a missing categorical value becomes the empty string, which no vocabulary holds (a text
  vocabulary file cannot have an empty line, as in TFT's own): like an unseen value, it gets an
  OOV id (never -1); a hashed feature hashes it as any other value;
- a missing list is an empty one;
- a missing or NaN numeric value becomes the feature's training mean (after `log1p` where the
  feature has it), so 0 after scaling.
"""

import os
import re
import uuid
from types import SimpleNamespace
from typing import Dict, List, Mapping

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.beam.experimental import PTransformAnalyzer

from compat import autograph  # noqa: F401  (autograph leaves TFT alone)
from trainer_module import features
from trainer_module.features.kind import Vocabulary


def _dense_column(values: tf.Tensor, default) -> tf.Tensor:
    """A [batch] tensor from a [batch, <=1] sparse or dense input, `default` where no value."""
    if isinstance(values, tf.sparse.SparseTensor):
        values = tf.sparse.to_dense(
            tf.SparseTensor(values.indices, values.values, [values.dense_shape[0], 1]),
            default_value=default)
    return tf.reshape(values, [-1])


def _map_values(fn, values: tf.Tensor) -> tf.Tensor:
    if isinstance(values, tf.sparse.SparseTensor):
        return tf.sparse.map_values(fn, values)
    return fn(values)


def categorical_values(values: tf.Tensor) -> tf.Tensor:
    """Strings (integer categories such as an hour become their decimal text), '' where missing."""
    if values.dtype != tf.string:
        values = _map_values(tf.strings.as_string, values)
    return _dense_column(values, '')


def numeric_values(values: tf.Tensor, dtype=tf.float32) -> tf.Tensor:
    """Floats, NaN where the value is missing."""
    return _dense_column(_map_values(lambda v: tf.cast(v, dtype), values), float('nan'))


def _per_column(analyzer, values: tf.Tensor) -> tf.Tensor:
    """An element-wise TFT analyzer (`tft.mean`, `tft.var`) of [batch, columns] float64 `values`,
    as the [columns] tensor the graph is traced with, however many columns.

    TFT's mean-and-variance combiner hands its float64 results out as `np.float64(array)`, which
    turns a one-element array into a number (np.float64 is a Python float; np.float32 keeps the
    array). With one column the constant bound in for the analyzer is then a scalar where the graph
    was traced with [1]: TFT's TF1 path (Transform runs with `force_tf_compat_v1`) binds it by
    importing the GraphDef, which refuses the ops after it ("Shapes must be equal rank, but are 0
    and 1"). Reshaping the result to the static column count accepts either.
    """
    return tf.reshape(analyzer(values, reduce_instance_dims=False), [values.shape[1]])


def list_values(values: tf.Tensor, max_length: int) -> tf.RaggedTensor:
    """A [batch, (values)] ragged tensor of strings from a multi-valued input (a [batch, n] sparse
    or dense tensor), each row cut to its last `max_length` values (integers become their decimal
    text, as in `categorical_values`)."""
    if isinstance(values, tf.sparse.SparseTensor):
        ragged = tf.RaggedTensor.from_sparse(values)
    else:
        ragged = tf.RaggedTensor.from_tensor(tf.reshape(values, [tf.shape(values)[0], -1]))
    if ragged.dtype != tf.string:
        ragged = ragged.with_flat_values(tf.strings.as_string(ragged.flat_values))
    return ragged[:, -max_length:]


def z_scores(values: tf.Tensor) -> tf.Tensor:
    """[batch, columns] float64 with NaN where missing -> float32 z-scores, 0 where missing.

    One analyzer for all columns, in one pass: TFT's element-wise mean and variance skip
    non-finite values, so they are each column's statistics over its present values. Filling a
    missing value with the mean leaves the mean as is and scales the variance by the share of
    present values, so the z-scores are those of the mean-filled column, computed without a
    second pass over the data. In float64: the sums are added up by Beam in an order that changes
    from run to run; in float32 that changed the z-scores' last bits, and the model trained on them.
    """
    present = tf.math.is_finite(values)
    mean = _per_column(tft.mean, values)
    variance = _per_column(tft.var, values)
    share = _per_column(tft.mean, tf.cast(present, tf.float64))
    std = tf.sqrt(variance * share)
    centred = tf.where(present, values - mean, tf.zeros_like(values))
    # A constant column has no spread to scale by: it stays centred, as tft.scale_to_z_score does.
    return tf.cast(tf.where(std > 0, centred / std, centred), tf.float32)


def min_max_scaled(values: tf.Tensor) -> tf.Tensor:
    """[batch, columns] float64 with NaN where missing -> float32 (x - min) / (max - min) of each
    column's present training values, as scikit-learn's MinMaxScaler (which DeepCTR's examples
    scale with); a missing value becomes the column's mean, scaled alike. Not clipped: a value
    beyond the training range lies beyond [0, 1], as with MinMaxScaler. A constant column scales
    to 0, as MinMaxScaler's does."""
    present = tf.math.is_finite(values)
    infinity = tf.constant(float('inf'), values.dtype)
    low = _per_column(tft.min, tf.where(present, values, infinity))
    high = _per_column(tft.max, tf.where(present, values, -infinity))
    mean = _per_column(tft.mean, values)
    # A column without a spread (constant, or never present) divides by 1 and is then set to 0.
    spread = high - low
    scaled = (tf.where(present, values, mean) - low) / tf.where(spread > 0, spread, 1.0)
    return tf.cast(tf.where(spread > 0, scaled, tf.zeros_like(scaled)), tf.float32)


# The one line of a vocabulary with no tokens (TFT's own placeholder for that case).
_PLACEHOLDER_TOKEN = tft.analyzers.get_empy_vocabulary_dummy_value(tf.string)[1]


def vocabulary_asset(index: int, name: str) -> str:
    """The file name of sparse feature `index`'s vocabulary among Transform's assets."""
    return f'vocabulary_{index:03d}_{re.sub(r"[^A-Za-z0-9_.-]", "_", name)}'


class _SumCounts(beam.CombineFn):
    """The batches' (vocabulary index, token, count) arrays -> a {token: count} per vocabulary,
    summed. One Beam element per batch: as one element per distinct token of a batch (through
    CombinePerKey), the click log's histories of item ids made 3.5 million elements at 1M rows,
    each through Beam's per-element machinery (docs/performance.md)."""

    def __init__(self, size: int):
        self._size = size

    def create_accumulator(self) -> List[Dict[bytes, int]]:
        return [{} for _ in range(self._size)]

    def add_input(self, mutable_accumulator, element):
        owners, tokens, counts = element
        for owner, token, count in zip(owners.tolist(), tokens.tolist(), counts.tolist()):
            counted = mutable_accumulator[owner]
            counted[token] = counted.get(token, 0) + count
        return mutable_accumulator

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators)
        for accumulator in accumulators:
            for counted, more in zip(merged, accumulator):
                for token, count in more.items():
                    counted[token] = counted.get(token, 0) + count
        return merged

    def extract_output(self, accumulator):
        return accumulator


class _CountVocabularies(PTransformAnalyzer):
    """All vocabularies in one pass: Beam adds up the (vocabulary, token) counts of every batch,
    then writes one file per vocabulary, its tokens by decreasing count (ties by token), the
    `top_k` first of those seen at least `min_frequency` times, and outputs their paths. TFT's own
    vocabulary is a separate chain of Beam stages per feature, whose fixed cost made Transform
    grow with the number of columns even on a few rows."""

    def __init__(self, vocabularies: List[Vocabulary]):
        super().__init__()
        self._vocabularies = vocabularies

    def expand(self, batches):
        vocabularies = self._vocabularies
        directory = os.path.join(self.base_temp_dir, 'vocabularies', uuid.uuid4().hex)

        def write(by_vocabulary):
            tf.io.gfile.makedirs(directory)
            paths = []
            for index, (vocabulary, counts) in enumerate(zip(vocabularies, by_vocabulary)):
                path = os.path.join(directory, vocabulary_asset(index, vocabulary.name))
                ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
                tokens = [token for token, count in ranked
                          if count >= vocabulary.min_frequency][:vocabulary.top_k]
                with tf.io.gfile.GFile(path, 'wb') as f:
                    # A lookup table cannot be built from an empty file.
                    f.write(b''.join(token + b'\n' for token in tokens or [_PLACEHOLDER_TOKEN]))
                paths.append(path.encode())
            return paths

        paths = (batches
                 | 'Sum' >> beam.CombineGlobally(_SumCounts(len(vocabularies)))
                 | 'Write' >> beam.Map(write))
        return tuple(paths | f'Path{index}' >> beam.Map(lambda all_paths, i=index: all_paths[i])
                     for index in range(len(vocabularies)))


def _vocabulary_paths(tokens: Mapping[str, tf.Tensor], vocabularies: List[Vocabulary]
                      ) -> Dict[str, tf.Tensor]:
    """{vocabulary name: its file's path}, each counted from `tokens[name]` ([n] strings) in one
    pass (`_CountVocabularies`). The empty string (a missing value) and a value with a line break
    cannot be a line of the vocabulary file (TensorFlow's text tables refuse an empty line): they
    get an OOV id, as in TFT's own vocabularies."""
    owners, unique_tokens, counts = [], [], []
    for index, vocabulary in enumerate(vocabularies):
        unique, _, count = tf.unique_with_counts(tokens[vocabulary.name], out_idx=tf.int64)
        # Matched once per distinct token of the batch, not per value: a click log's histories
        # repeat their item and category ids many times over.
        kept = tf.logical_not(tf.strings.regex_full_match(unique, r'(?s)|.*[\r\n].*'))
        unique, count = tf.boolean_mask(unique, kept), tf.boolean_mask(count, kept)
        owners.append(tf.fill(tf.shape(unique), index))
        unique_tokens.append(unique)
        counts.append(count)
    paths = tft.experimental.ptransform_analyzer(
        inputs=[tf.concat(owners, 0), tf.concat(unique_tokens, 0), tf.concat(counts, 0)],
        ptransform=_CountVocabularies(vocabularies),
        output_dtypes=[tf.string] * len(vocabularies),
        output_shapes=[[]] * len(vocabularies),
        # What the tables hold while TFT traces the graph, before the counts exist.
        output_asset_default_values=[_PLACEHOLDER_TOKEN + b'\n'] * len(vocabularies),
        name='vocabularies')
    for index, vocabulary in enumerate(vocabularies):
        # Named after its owner: `TFTransformOutput.vocabulary_size_by_name(owner)`.
        tft.annotate_asset(vocabulary.name, vocabulary_asset(index, vocabulary.name))
    return {vocabulary.name: path for vocabulary, path in zip(vocabularies, paths)}


def preprocessing_fn(inputs, custom_config):
    """`custom_config` is `PipelineConfig.transform_dict()`: the features of each kind (by
    section), the label columns and the default number of OOV buckets."""
    settings = SimpleNamespace(**features.from_dicts(custom_config))
    ids_of = features.feature_ids(settings, custom_config['num_oov_buckets'])
    vocabularies = list({ids.vocabulary.name: ids.vocabulary for ids in ids_of.values()
                         if ids.vocabulary is not None}.values())
    named = features.features_by_name(settings)
    # Each feature's values computed once, for its vocabulary's counts and its outputs.
    values = {name: features.kind_of(feature).values(feature, inputs)
              for name, feature in named.items()}
    tokens: Dict[str, List[tf.Tensor]] = {vocabulary.name: [] for vocabulary in vocabularies}
    for name, feature in named.items():
        for vocabulary, counted in features.kind_of(feature).tokens(feature, values[name]).items():
            if vocabulary in tokens:  # a hashed feature has no vocabulary to count
                tokens[vocabulary].append(counted)
    paths = _vocabulary_paths({name: tf.concat(counted, 0) for name, counted in tokens.items()},
                              vocabularies) if vocabularies else {}

    def ids(name: str, strings: tf.Tensor) -> tf.Tensor:
        """Feature `name`'s ids of `strings`: its vocabulary's, or its hash buckets."""
        spec = ids_of[name]
        if spec.vocabulary is None:
            return tf.strings.to_hash_bucket_fast(strings, spec.hash_buckets)
        return tft.apply_vocabulary(strings, paths[spec.vocabulary.name],
                                    num_oov_buckets=spec.vocabulary.num_oov_buckets)

    outputs = {}
    for kind in features.KINDS:
        outputs.update(kind.transform(getattr(settings, kind.section), values, ids))
    for label in custom_config['label_columns']:
        outputs[label] = numeric_values(inputs[label])
    return outputs
