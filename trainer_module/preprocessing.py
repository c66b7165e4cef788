"""Transform's `preprocessing_fn`: vocabularies for sparse features, scaling for dense ones, labels as is.

The transformed features keep their raw names. Rules for missing values, applied inside the TFT graph
and therefore identically in training and serving:
- a missing categorical value becomes the empty string, which has its own vocabulary entry when it
  occurs in training and an OOV id otherwise; an unseen value gets an OOV id (never -1);
- a missing or NaN numeric value becomes the feature's training mean, so 0 after scaling.
"""

import tensorflow as tf
import tensorflow_transform as tft

from trainer_module import tracing  # noqa: F401  (autograph leaves TFT alone)


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


def _fill_with_mean(values: tf.Tensor) -> tf.Tensor:
    present = tf.math.is_finite(values)
    mean = tft.mean(tf.boolean_mask(values, present))
    return tf.where(present, values, mean)


def preprocessing_fn(inputs, custom_config):
    """`custom_config` is `PipelineConfig.transform_dict()`."""
    outputs = {}
    for name in custom_config['sparse_features']:
        outputs[name] = tft.compute_and_apply_vocabulary(
            _categorical(inputs[name]),
            num_oov_buckets=custom_config['num_oov_buckets'],
            vocab_filename=name)
    for feature in custom_config['dense_features']:
        # In float64: the means and variances are sums over the data, which Beam adds up in an
        # order that changes from run to run; in float32 that changed the z-scores' last bits, and
        # the model trained on them. In float64 the order's error is far below float32's.
        values = _fill_with_mean(_numeric(inputs[feature['name']], tf.float64))
        if feature['log1p']:
            values = tf.math.log1p(tf.maximum(values, 0.0))
        outputs[feature['name']] = tf.cast(tft.scale_to_z_score(values), tf.float32)
    for label in custom_config['label_columns']:
        outputs[label] = _numeric(inputs[label])
    return outputs
