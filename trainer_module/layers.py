"""Keras layers of the multi-task models, wired as DeepCTR 0.9.4 wires them, without Lambda layers
so that the models save as SavedModels and serve.

Where DeepCTR builds one embedding layer per table, `SparseEmbeddings` holds the tables of one
dimension in one variable: the same parameters, initial values and losses in far fewer ops per
training step, which on CPU bounds the step time of models this size.
"""

from typing import Dict, List, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras


def _l2(l2_reg):
    """DeepCTR's L2 penalty; none at all when it is 0, which adds the same nothing in fewer ops."""
    return keras.regularizers.l2(l2_reg) if l2_reg else None


class DNN(keras.layers.Layer):
    """DeepCTR's DNN: Dense layers (glorot_normal kernels seeded by `seed`, zero biases, L2 on
    kernels), each followed by batch normalisation (when `use_bn`), the activation, and dropout
    (seeded `seed + i`). With no hidden units it passes its input through."""

    def __init__(self, hidden_units, activation='relu', l2_reg=0.0, dropout_rate=0.0, use_bn=False,
                 seed=1024, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.l2_reg = l2_reg
        self.dropout_rate = dropout_rate
        self.use_bn = use_bn
        self.seed = seed

    def build(self, input_shape):
        """Makes the kernels, biases and per-layer sublayers for inputs [batch, ..., dim]."""
        sizes = (int(input_shape[-1]),) + self.hidden_units
        self.kernels = [
            self.add_weight(name=f'kernel{i}', shape=(sizes[i], sizes[i + 1]),
                            initializer=keras.initializers.glorot_normal(seed=self.seed),
                            regularizer=_l2(self.l2_reg))
            for i in range(len(self.hidden_units))]
        self.biases = [self.add_weight(name=f'bias{i}', shape=(units,), initializer='zeros')
                       for i, units in enumerate(self.hidden_units)]
        self.bn_layers = ([keras.layers.BatchNormalization() for _ in self.hidden_units]
                          if self.use_bn else [])
        self.activation_layers = [keras.layers.Activation(self.activation) for _ in self.hidden_units]
        self.dropout_layers = [keras.layers.Dropout(self.dropout_rate, seed=self.seed + i)
                               for i in range(len(self.hidden_units))]
        super().build(input_shape)

    def call(self, inputs, training=None):
        """[batch, ..., dim] -> [batch, ..., last hidden units] (the input itself with none)."""
        x = inputs
        for i in range(len(self.hidden_units)):
            # A plain matmul where the input is [batch, dim] lets Grappler fuse it with the bias and
            # the activation into one op.
            x = tf.nn.bias_add(tf.matmul(x, self.kernels[i]) if x.shape.rank == 2 else
                               tf.tensordot(x, self.kernels[i], axes=(-1, 0)), self.biases[i])
            if self.use_bn:
                x = self.bn_layers[i](x, training=training)
            x = self.activation_layers[i](x)
            if self.dropout_rate:
                x = self.dropout_layers[i](x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        """`input_shape` with its last dimension that of the last hidden layer."""
        units = self.hidden_units[-1] if self.hidden_units else input_shape[-1]
        return tuple(input_shape[:-1]) + (units,)

    def get_config(self):
        """The layer's config with the DNN's arguments."""
        return dict(super().get_config(), hidden_units=self.hidden_units, activation=self.activation,
                    l2_reg=self.l2_reg, dropout_rate=self.dropout_rate, use_bn=self.use_bn,
                    seed=self.seed)


class Experts(keras.layers.Layer):
    """`num_experts` DeepCTR DNNs of the same arguments on the same input: [batch, dim] -> a list of
    `num_experts` [batch, units]. Every expert starts from the same seeded weights, as in DeepCTR.

    The experts stay separate ops rather than one batched matmul: with one thread per op
    (`training.intra_op_parallelism_threads=1`) separate experts run side by side on the cores,
    and without batch normalisation each matmul fuses with its bias and activation.
    """

    def __init__(self, num_experts, hidden_units, activation='relu', l2_reg=0.0, dropout_rate=0.0,
                 use_bn=False, seed=1024, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = num_experts
        self.dnn_arguments = dict(hidden_units=tuple(hidden_units), activation=activation,
                                  l2_reg=l2_reg, dropout_rate=dropout_rate, use_bn=use_bn, seed=seed)
        self.experts = [DNN(**self.dnn_arguments, name=f'expert_{i}') for i in range(num_experts)]

    def call(self, inputs, training=None):
        """[batch, dim] -> a list of `num_experts` [batch, units], one per expert."""
        return [expert(inputs, training=training) for expert in self.experts]

    def compute_output_shape(self, input_shape):
        """The list of the experts' output shapes."""
        return [expert.compute_output_shape(input_shape) for expert in self.experts]

    def get_config(self):
        """The layer's config with `num_experts` and the experts' DNN arguments."""
        return dict(super().get_config(), num_experts=self.num_experts, **self.dnn_arguments)


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
        self.features: List[Tuple[str, int, int, bool]] = [
            (str(name), int(size), int(dimension), bool(trainable))
            for name, size, dimension, trainable in features]
        self.l2_reg = l2_reg
        self.initializer_stddev = initializer_stddev
        self.seed = seed
        # (dimension, trainable) -> {embedding name: (first row, vocabulary size)}
        groups: Dict[Tuple[int, bool], Dict[str, Tuple[int, int]]] = {}
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
        """Makes one variable [rows of its tables, dimension] per group of tables."""
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

    def set_tables(self, tables):
        """Loads `tables`, {embedding name: [vocabulary size, dimension] values}, one for each
        table, into the blocks of the fused variables (as DeepCTR's per-table `Embedding` layers
        hold them)."""
        missing = sorted({feature[0] for feature in self.features} - set(tables))
        if missing:
            raise ValueError(f'{self.name}: no values given for the tables {missing}')
        for (dimension, _, members), variable in zip(self._groups, self.tables):
            value = variable.numpy()
            for i, first_row, size in members:
                name = self.features[i][0]
                table = tables[name]
                if tuple(table.shape) != (size, dimension):
                    raise ValueError(f'{self.name}: table {name!r} is {tuple(table.shape)}, '
                                     f'expected {(size, dimension)}')
                value[first_row:first_row + size] = table
            variable.assign(value)

    def call(self, ids):
        """A list of [batch, 1] ids, one per feature -> [batch, sum of their dimensions]; an id
        outside [0, vocabulary size) fails the op."""
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
        by_feature: Dict[int, tf.Tensor] = {}
        for indices, rows in gathered:
            by_feature.update(zip(indices, tf.unstack(rows, axis=1)))
        return tf.concat([by_feature[i] for i in range(len(self.features))], axis=1)

    def compute_output_shape(self, input_shape):
        """(batch, sum of the features' dimensions)."""
        return (input_shape[0][0], sum(feature[2] for feature in self.features))

    def get_config(self):
        """The layer's config with the features, the L2 penalty and the initializer's arguments."""
        return dict(super().get_config(), features=self.features, l2_reg=self.l2_reg,
                    initializer_stddev=self.initializer_stddev, seed=self.seed)


class MixExperts(keras.layers.Layer):
    """The gate-weighted sum of the experts: ([[batch, dim] per expert], [batch, experts]) ->
    [batch, dim]. A product per expert, not one over [batch, experts, dim] stacked: TensorFlow's
    3-D broadcast product and its gradient cost a large share of a training step
    (docs/performance.md)."""

    def call(self, inputs):
        """([[batch, dim] per expert], [batch, experts]) -> [batch, dim]."""
        experts, gate = inputs
        return tf.add_n([expert * gate[:, i:i + 1] for i, expert in enumerate(experts)])


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
        """Makes the global bias [1] (zeros) when `use_bias`."""
        if self.use_bias:
            self.global_bias = self.add_weight(name='global_bias', shape=(1,), initializer='zeros')
        super().build(input_shape)

    def call(self, inputs):
        """Logits [batch, 1] -> predictions [batch, 1]."""
        x = inputs
        if self.use_bias:
            x = tf.nn.bias_add(x, self.global_bias, data_format='NHWC')
        if self.task == 'binary':
            x = tf.sigmoid(x)
        return tf.reshape(x, (-1, 1))

    def compute_output_shape(self, input_shape):
        """(batch, 1)."""
        return (None, 1)

    def get_config(self):
        """The layer's config with `task` and `use_bias`."""
        return dict(super().get_config(), task=self.task, use_bias=self.use_bias)


class TaskUncertainty(keras.layers.Layer):
    """One learned log-variance s = log(sigma^2) per task, for the uncertainty weighting of Kendall,
    Gal and Cipolla (CVPR 2018): a task's loss L becomes exp(-s) * L + s / 2 for a classification
    task (its likelihood scaled by 1 / sigma^2) and (exp(-s) * L + s) / 2 for a regression task
    (mean squared error under a Gaussian of variance sigma^2). At the minimum over s, sigma^2 is L
    for regression and 2 L for classification: a noisier task gets a larger variance and a smaller
    weight. Holds the variables only; `weighted_loss` wraps each task's loss around them."""

    def __init__(self, task_types, **kwargs):
        super().__init__(**kwargs)
        self.task_types = tuple(task_types)

    def build(self, input_shape=None):
        """Makes the log-variances [tasks], zeros (sigma^2 = 1); `input_shape` is not read."""
        self.log_variance = self.add_weight(name='log_variance', shape=(len(self.task_types),),
                                            initializer='zeros')
        super().build(input_shape)

    def weighted_loss(self, index, loss: keras.losses.Loss) -> keras.losses.Loss:
        """Task `index`'s `loss`, weighted by its learned variance."""
        return _UncertaintyWeightedLoss(self, index, loss)

    def get_config(self):
        """The layer's config with `task_types`."""
        return dict(super().get_config(), task_types=self.task_types)


class _UncertaintyWeightedLoss(keras.losses.Loss):

    def __init__(self, uncertainty: TaskUncertainty, index: int, loss: keras.losses.Loss):
        super().__init__(name=f'uncertainty_weighted_{loss.name}')
        self.uncertainty, self.index, self.loss = uncertainty, index, loss
        self.scale = 0.5 if uncertainty.task_types[index] == 'regression' else 1.0

    def call(self, y_true, y_pred):
        s = self.uncertainty.log_variance[self.index]
        # The per-example losses (Loss.call), averaged by this Loss's own reduction.
        return self.scale * tf.exp(-s) * self.loss.call(y_true, y_pred) + 0.5 * s
