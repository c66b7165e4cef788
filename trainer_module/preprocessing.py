"""Transform's `preprocessing_fn`: vocabularies for sparse features, scaling for dense ones, labels
as is.

The transformed features keep their raw names. Rules for missing values, applied inside the TFT graph
and therefore identically in training and serving:
- a missing categorical value becomes the empty string, which no vocabulary holds (a text
  vocabulary file cannot have an empty line, as in TFT's own): like an unseen value, it gets an
  OOV id (never -1);
- a missing or NaN numeric value becomes the feature's training mean (after `log1p` where the
  feature has it), so 0 after scaling.
"""

import os
import re
import uuid
from collections import Counter
from typing import List

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_transform.beam.experimental import PTransformAnalyzer

from compat import autograph  # noqa: F401  (autograph leaves TFT alone)


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


def _categorical(values: tf.Tensor) -> tf.Tensor:
    """Strings (integer categories such as an hour become their decimal text), '' where missing."""
    if values.dtype != tf.string:
        values = _map_values(tf.strings.as_string, values)
    return _dense_column(values, '')


def _numeric(values: tf.Tensor, dtype=tf.float32) -> tf.Tensor:
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


def _z_scores(values: tf.Tensor) -> tf.Tensor:
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


# The one line of a vocabulary with no tokens (TFT's own placeholder for that case).
_PLACEHOLDER_TOKEN = tft.analyzers.get_empy_vocabulary_dummy_value(tf.string)[1]


def vocabulary_asset(index: int, name: str) -> str:
    """The file name of sparse feature `index`'s vocabulary among Transform's assets."""
    return f'vocabulary_{index:03d}_{re.sub(r"[^A-Za-z0-9_.-]", "_", name)}'


class _CountVocabularies(PTransformAnalyzer):
    """All sparse features' vocabularies in one pass: Beam adds up the (feature, token) counts of
    every batch, then writes one file per feature, tokens by decreasing count (ties by token),
    and outputs their paths. TFT's own vocabulary is a separate chain of Beam stages per feature,
    whose fixed cost made Transform grow with the number of columns even on a few rows."""

    def __init__(self, names):
        super().__init__()
        self._names = names

    def expand(self, batches):
        names = self._names
        directory = os.path.join(self.base_temp_dir, 'vocabularies', uuid.uuid4().hex)

        def pairs(batch):
            features, tokens, counts = batch
            return zip(zip(features.tolist(), tokens.tolist()), counts.tolist())

        def write(counted):
            tf.io.gfile.makedirs(directory)
            by_feature: List[Counter] = [Counter() for _ in names]
            for (feature, token), count in counted:
                by_feature[feature][token] = count
            paths = []
            for index, counts in enumerate(by_feature):
                path = os.path.join(directory, vocabulary_asset(index, names[index]))
                tokens = [token for token, _ in
                          sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
                with tf.io.gfile.GFile(path, 'wb') as f:
                    # A lookup table cannot be built from an empty file.
                    f.write(b''.join(token + b'\n' for token in tokens or [_PLACEHOLDER_TOKEN]))
                paths.append(path.encode())
            return paths

        paths = (batches
                 | 'Pairs' >> beam.FlatMap(pairs)
                 | 'Sum' >> beam.CombinePerKey(sum)  # type: ignore[arg-type]  # Beam's stubs omit builtins
                 | 'Gather' >> beam.combiners.ToList()
                 | 'Write' >> beam.Map(write))
        return tuple(paths | f'Path{index}' >> beam.Map(lambda all_paths, i=index: all_paths[i])
                     for index in range(len(names)))


def _vocabulary_ids(columns, num_oov_buckets: int):
    """{name: [batch] strings} -> {name: [batch] int64 ids}: a vocabulary per feature, counted in
    one pass (`_CountVocabularies`); an unseen value gets one of `num_oov_buckets` ids after the
    vocabulary. The empty string (a missing value) and a value with a line break cannot be a line
    of the vocabulary file (TensorFlow's text tables refuse an empty line): they get an OOV id, as
    in TFT's own vocabularies."""
    names = list(columns)
    features, tokens, counts = [], [], []
    for index, name in enumerate(names):
        values = columns[name]
        values = tf.boolean_mask(values, tf.logical_not(
            tf.strings.regex_full_match(values, r'(?s)|.*[\r\n].*')))
        unique, _, count = tf.unique_with_counts(values, out_idx=tf.int64)
        features.append(tf.fill(tf.shape(unique), index))
        tokens.append(unique)
        counts.append(count)
    paths = tft.experimental.ptransform_analyzer(
        inputs=[tf.concat(features, 0), tf.concat(tokens, 0), tf.concat(counts, 0)],
        ptransform=_CountVocabularies(names),
        output_dtypes=[tf.string] * len(names),
        output_shapes=[[]] * len(names),
        # What the tables hold while TFT traces the graph, before the counts exist.
        output_asset_default_values=[_PLACEHOLDER_TOKEN + b'\n'] * len(names),
        name='vocabularies')
    ids = {}
    for index, (name, path) in enumerate(zip(names, paths)):
        tft.annotate_asset(name, vocabulary_asset(index, name))
        ids[name] = tft.apply_vocabulary(columns[name], path, num_oov_buckets=num_oov_buckets)
    return ids


def preprocessing_fn(inputs, custom_config):
    """`custom_config` is `PipelineConfig.transform_dict()`."""
    outputs = {}
    sparse = custom_config['sparse_features']
    if sparse:
        outputs.update(_vocabulary_ids({name: _categorical(inputs[name]) for name in sparse},
                                       custom_config['num_oov_buckets']))
    dense = custom_config['dense_features']
    if dense:
        columns = []
        for feature in dense:
            values = _numeric(inputs[feature['name']], tf.float64)
            if feature['log1p']:
                # Negative values count as 0; NaN (missing) stays NaN.
                values = tf.math.log1p(tf.where(values < 0, tf.zeros_like(values), values))
            columns.append(values)
        scaled = _z_scores(tf.stack(columns, axis=1))
        for i, feature in enumerate(dense):
            outputs[feature['name']] = scaled[:, i]
    for label in custom_config['label_columns']:
        outputs[label] = _numeric(inputs[label])
    return outputs
