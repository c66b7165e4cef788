"""Keras layers of the multi-task models, wired as DeepCTR 0.9.3 wires them, without Lambda layers
so that the models save as SavedModels and serve.

Where DeepCTR builds one layer per embedding table or per expert, these layers hold them as one
variable: the same parameters, initial values and losses in a fraction of the ops per training
step, which on CPU is what bounds the step time of models this size.
"""

from typing import Sequence, Tuple

import tensorflow as tf
import tf_keras as keras


def _l2(l2_reg):
    """DeepCTR's L2 penalty; none at all when it is 0, which adds the same nothing in fewer ops."""
    return keras.regularizers.l2(l2_reg) if l2_reg else None


class DNN(keras.layers.Layer):
    """DeepCTR's DNN: Dense layers (glorot_normal kernels seeded by `seed`, zero biases, L2 on kernels),
    each followed by batch normalisation (when `use_bn`), the activation, and dropout (seeded `seed + i`).
    With no hidden units it passes its input through."""

    def __init__(self, hidden_units, activation='relu', l2_reg=0.0, dropout_rate=0.0, use_bn=False,
                 seed=1024, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.l2_reg = l2_reg
        self.dropout_rate = dropout_rate
        self.use_bn = use_bn
        self.seed = seed

    def _weight_shapes(self, fan_in, units):
        """The shapes of one layer's kernel and bias."""
        return (fan_in, units), (units,)

    def _kernel_initializer(self):
        return keras.initializers.glorot_normal(seed=self.seed)

    def _batch_normalization(self):
        return keras.layers.BatchNormalization()

    def _affine(self, x, i):
        return tf.nn.bias_add(tf.tensordot(x, self.kernels[i], axes=(-1, 0)), self.biases[i])

    def build(self, input_shape):
        sizes = (int(input_shape[-1]),) + self.hidden_units
        shapes = [self._weight_shapes(sizes[i], sizes[i + 1]) for i in range(len(self.hidden_units))]
        self.kernels = [
            self.add_weight(name=f'kernel{i}', shape=kernel, initializer=self._kernel_initializer(),
                            regularizer=_l2(self.l2_reg))
            for i, (kernel, _) in enumerate(shapes)]
        self.biases = [self.add_weight(name=f'bias{i}', shape=bias, initializer='zeros')
                       for i, (_, bias) in enumerate(shapes)]
        self.bn_layers = ([self._batch_normalization() for _ in self.hidden_units]
                          if self.use_bn else [])
        self.activation_layers = [keras.layers.Activation(self.activation) for _ in self.hidden_units]
        self.dropout_layers = [keras.layers.Dropout(self.dropout_rate, seed=self.seed + i)
                               for i in range(len(self.hidden_units))]
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for i in range(len(self.hidden_units)):
            x = self._affine(x, i)
            if self.use_bn:
                x = self.bn_layers[i](x, training=training)
            x = self.activation_layers[i](x)
            x = self.dropout_layers[i](x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        units = self.hidden_units[-1] if self.hidden_units else input_shape[-1]
        return tuple(input_shape[:-1]) + (units,)

    def get_config(self):
        return dict(super().get_config(), hidden_units=self.hidden_units, activation=self.activation,
                    l2_reg=self.l2_reg, dropout_rate=self.dropout_rate, use_bn=self.use_bn,
                    seed=self.seed)


class Experts(DNN):
    """`num_experts` DNNs of the same shape on the same input, [batch, dim] -> [batch, num_experts,
    units], computed together: each layer is one batched matmul over [num_experts, in, out] kernels.

    Each expert is DeepCTR's DNN with the given arguments, initialised as DeepCTR initialises it
    (every expert from the same seeded glorot_normal); batch normalisation keeps statistics per
    expert and unit, and the L2 penalty is the sum of the experts' penalties.
    """

    def __init__(self, num_experts, hidden_units, **kwargs):
        super().__init__(hidden_units, **kwargs)
        self.num_experts = num_experts

    def _weight_shapes(self, fan_in, units):
        return (self.num_experts, fan_in, units), (self.num_experts, 1, units)

    def _kernel_initializer(self):
        glorot = super()._kernel_initializer()

        def same_for_every_expert(shape, dtype=None):
            return tf.tile(glorot(shape[1:], dtype=dtype)[None], [shape[0], 1, 1])

        return same_for_every_expert

    def _batch_normalization(self):
        # Activations are [num_experts, batch, units]: statistics per expert and unit.
        return keras.layers.BatchNormalization(axis=[0, 2])

    def _affine(self, x, i):
        # The first layer's [batch, dim] input is broadcast over the experts.
        return tf.matmul(x, self.kernels[i]) + self.biases[i]

    def call(self, inputs, training=None):
        if not self.hidden_units:
            return tf.tile(inputs[:, None, :], [1, self.num_experts, 1])
        return tf.transpose(super().call(inputs, training=training), [1, 0, 2])

    def compute_output_shape(self, input_shape):
        units = self.hidden_units[-1] if self.hidden_units else input_shape[-1]
        return (input_shape[0], self.num_experts, units)

    def get_config(self):
        return dict(super().get_config(), num_experts=self.num_experts)


class SparseEmbeddings(keras.layers.Layer):
    """The embeddings of several sparse features, [batch, 1] ids each -> [batch, sum of their
    dimensions] in feature order, as DeepCTR's per-table `Embedding` layers then `Concatenate` and
    `Flatten` give them.

    Tables of the same dimension (and trainability) live in one variable, each table a block of
    rows; a feature's ids are offset to its table's block, so one gather serves them all. A table
    several features name (`embedding_name`) is one block they share. Initial values are DeepCTR's
    (every table from the same seeded normal) and the L2 penalty is the sum of the tables'.
    """

    def __init__(self, features: Sequence[Tuple[str, int, int, bool]], l2_reg=0.0,
                 initializer_stddev=0.0001, seed=2020, **kwargs):
        """`features`: (embedding name, vocabulary size, dimension, trainable) per input, in
        order."""
        super().__init__(**kwargs)
        self.features = [tuple(feature) for feature in features]
        self.l2_reg = l2_reg
        self.initializer_stddev = initializer_stddev
        self.seed = seed
        groups = {}  # (dimension, trainable) -> {embedding name: (first row, vocabulary size)}
        for name, vocabulary_size, dimension, trainable in self.features:
            tables = groups.setdefault((dimension, trainable), {})
            if name not in tables:
                tables[name] = (sum(size for _, size in tables.values()), vocabulary_size)
        # Per group: its dimension, trainability, and (input index, first row, vocabulary size)
        # of each feature in it; tuples, which Keras does not track.
        self._groups = tuple(
            (dimension, trainable, tuple(
                (i, *tables[feature[0]]) for i, feature in enumerate(self.features)
                if feature[2:] == (dimension, trainable)))
            for (dimension, trainable), tables in groups.items())
        self._table_sizes = tuple(tuple(size for _, size in tables.values())
                                  for tables in groups.values())

    def build(self, input_shape):
        normal = keras.initializers.RandomNormal(stddev=self.initializer_stddev, seed=self.seed)

        def each_table_drawn_alike(sizes, dimension):
            return lambda shape, dtype=None: tf.concat(
                [normal((size, dimension), dtype=dtype) for size in sizes], axis=0)

        self.tables = [
            self.add_weight(name=f'embeddings_dim{dimension}' + ('' if trainable else '_frozen'),
                            shape=(sum(sizes), dimension),
                            initializer=each_table_drawn_alike(sizes, dimension),
                            regularizer=_l2(self.l2_reg), trainable=trainable)
            for (dimension, trainable, _), sizes in zip(self._groups, self._table_sizes)]
        super().build(input_shape)

    def call(self, ids):
        gathered = []
        for (_, _, members), table in zip(self._groups, self.tables):
            indices, first_rows, sizes = (list(column) for column in zip(*members))
            group_ids = tf.concat([tf.cast(ids[i], tf.int32) for i in indices], axis=1)
            # One gather reads every table's rows: an id outside its table would read another's.
            checked = tf.debugging.Assert(
                tf.reduce_all((group_ids >= 0) & (group_ids < sizes)),
                ['sparse feature ids must be in [0, vocabulary_size): ' + ', '.join(
                    f'{self.features[i][0]} < {size}' for i, size in zip(indices, sizes))])
            with tf.control_dependencies([checked]):
                gathered.append((indices, tf.gather(table, group_ids + first_rows)))
        if len(gathered) == 1:  # [batch, features, dimension], in feature order
            rows = gathered[0][1]
            return tf.reshape(rows, [-1, rows.shape[1] * rows.shape[2]])
        by_feature = {}
        for indices, rows in gathered:
            by_feature.update(zip(indices, tf.unstack(rows, axis=1)))
        return tf.concat([by_feature[i] for i in range(len(self.features))], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], sum(feature[2] for feature in self.features))

    def get_config(self):
        return dict(super().get_config(), features=self.features, l2_reg=self.l2_reg,
                    initializer_stddev=self.initializer_stddev, seed=self.seed)


class MixExperts(keras.layers.Layer):
    """The gate-weighted sum of the experts: ([batch, experts, dim], [batch, experts]) -> [batch, dim]."""

    def call(self, inputs):
        experts, gate = inputs
        return tf.reduce_sum(experts * tf.expand_dims(gate, axis=-1), axis=1)


class PredictionLayer(keras.layers.Layer):
    """DeepCTR's PredictionLayer: a global bias, then sigmoid for 'binary' or identity for
    'regression'; output [batch, 1]."""

    def __init__(self, task='binary', use_bias=True, **kwargs):
        if task not in ('binary', 'multiclass', 'regression'):
            raise ValueError('task must be binary,multiclass or regression')
        super().__init__(**kwargs)
        self.task = task
        self.use_bias = use_bias

    def build(self, input_shape):
        if self.use_bias:
            self.global_bias = self.add_weight(name='global_bias', shape=(1,), initializer='zeros')
        super().build(input_shape)

    def call(self, inputs):
        x = inputs
        if self.use_bias:
            x = tf.nn.bias_add(x, self.global_bias, data_format='NHWC')
        if self.task == 'binary':
            x = tf.sigmoid(x)
        return tf.reshape(x, (-1, 1))

    def compute_output_shape(self, input_shape):
        return (None, 1)

    def get_config(self):
        return dict(super().get_config(), task=self.task, use_bias=self.use_bias)
