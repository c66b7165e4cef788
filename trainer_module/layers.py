"""Keras layers of the multi-task models, wired as DeepCTR 0.9.4 wires them, without Lambda layers
so that the models save as SavedModels and serve.

Where DeepCTR builds one embedding layer per table, `SparseEmbeddings` holds the tables of one
dimension in one variable, sequences' ids gathered with the single ids: the same parameters,
initial values and losses in far fewer ops per training step, which on CPU bounds the step time of
models this size. `Hash` hashes raw values into ids as DeepCTR does; `SequencePooling` pools a
sequence's embeddings as DeepCTR's `SequencePoolingLayer`, `AttentionSequencePooling` as DIN's
local activation unit.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

from trainer_module.task_types import TASK_TYPES


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

    `names`: each expert's name (its DNN's, DeepCTR's name for it, and the gate report's), by
    default `expert_<i>` as in DeepCTR's MMOE.
    """

    def __init__(self, num_experts, hidden_units, activation='relu', l2_reg=0.0, dropout_rate=0.0,
                 use_bn=False, seed=1024, names=None, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = num_experts
        self.names = tuple(names) if names is not None else tuple(
            f'expert_{i}' for i in range(num_experts))
        if len(self.names) != num_experts:
            raise ValueError(f'{self.name}: {len(self.names)} names for {num_experts} experts')
        self.dnn_arguments = dict(hidden_units=tuple(hidden_units), activation=activation,
                                  l2_reg=l2_reg, dropout_rate=dropout_rate, use_bn=use_bn, seed=seed)
        self.experts = [DNN(**self.dnn_arguments, name=name) for name in self.names]

    def call(self, inputs, training=None):
        """[batch, dim] -> a list of `num_experts` [batch, units], one per expert."""
        return [expert(inputs, training=training) for expert in self.experts]

    def compute_output_shape(self, input_shape):
        """The list of the experts' output shapes."""
        return [expert.compute_output_shape(input_shape) for expert in self.experts]

    def get_config(self):
        """The layer's config with `num_experts`, the experts' DNN arguments and names."""
        return dict(super().get_config(), num_experts=self.num_experts, names=self.names,
                    **self.dnn_arguments)


class Hash(keras.layers.Layer):
    """DeepCTR's `Hash` (without a vocabulary file): raw values -> int64 ids in [0, num_buckets),
    FarmHash (`tf.strings.to_hash_bucket_fast`) of their text, a number's text as
    `tf.strings.as_string` writes it, so the same values get DeepCTR's ids. With `mask_zero`, the
    text of zero ('0', or '0.000000' for a float) is id 0, the padding of a sequence, and every
    other value one of [1, num_buckets), as DeepCTR hashes a `VarLenSparseFeat`."""

    def __init__(self, num_buckets, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.num_buckets = num_buckets
        self.mask_zero = mask_zero

    def call(self, values):
        """Values of any shape (strings or numbers) -> int64 ids of that shape."""
        if values.dtype == tf.string:
            zero = '0'  # DeepCTR's: the text of an int32 zero
        else:
            zero = tf.strings.as_string(tf.zeros([1], dtype=values.dtype))
            values = tf.strings.as_string(values)
        if not self.mask_zero:
            return tf.strings.to_hash_bucket_fast(values, self.num_buckets)
        ids = tf.strings.to_hash_bucket_fast(values, self.num_buckets - 1) + 1
        return ids * tf.cast(tf.not_equal(values, zero), tf.int64)

    def compute_output_shape(self, input_shape):
        """The input's shape."""
        return input_shape

    def get_config(self):
        """The layer's config with `num_buckets` and `mask_zero`."""
        return dict(super().get_config(), num_buckets=self.num_buckets, mask_zero=self.mask_zero)


class SparseEmbeddings(keras.layers.Layer):
    """The embeddings of several sparse features and sequences, as DeepCTR's per-table `Embedding`
    layers give them: [batch, 1] ids of a feature -> its [batch, dimension] embedding, [batch,
    length] ids of a sequence -> its [batch, length, dimension] embeddings.

    Tables of the same dimension (and trainability) live in one variable, each table a block of
    rows; a feature's ids are offset to its table's block, so one gather serves them all, single
    ids and sequences alike (a group's ids side by side, [batch, positions], then split back). A
    table several inputs name (`embedding_name`) is one block they share. Initial values are
    DeepCTR's (every table from the same seeded normal) and the L2 penalty is the sum of the
    tables'.

    The outputs, in input order: each run of consecutive single ids as one [batch, sum of their
    dimensions] (DeepCTR's `Concatenate` and `Flatten` of them), each sequence on its own. Without
    sequences that is one tensor, not a list.
    """

    def __init__(self, features: Sequence[Sequence], l2_reg=0.0, initializer_stddev=0.0001,
                 seed=2020, **kwargs):
        """`features`: (embedding name, vocabulary size, dimension, trainable[, length]) per input,
        in order; a length (positions, >= 1) makes the input a sequence of [batch, length] ids,
        None or none given a single id."""
        super().__init__(**kwargs)
        self.features: List[Tuple[str, int, int, bool, Optional[int]]] = []
        for name, size, dimension, trainable, *length in features:
            sequence = length[0] if length else None
            self.features.append((str(name), int(size), int(dimension), bool(trainable),
                                  None if sequence is None else int(sequence)))
        self.l2_reg = l2_reg
        self.initializer_stddev = initializer_stddev
        self.seed = seed
        # (dimension, trainable) -> {embedding name: (first row, vocabulary size)}
        groups: Dict[Tuple[int, bool], Dict[str, Tuple[int, int]]] = {}
        for name, vocabulary_size, dimension, trainable, _ in self.features:
            tables = groups.setdefault((dimension, trainable), {})
            if name not in tables:
                tables[name] = (sum(size for _, size in tables.values()), vocabulary_size)
        keys = list(groups)
        group_of = [keys.index(feature[2:4]) for feature in self.features]
        # The outputs: a run of single ids, or one sequence, each a list of input indices.
        outputs: List[List[int]] = []
        for i, feature in enumerate(self.features):
            if feature[4] is None and i and self.features[i - 1][4] is None:
                outputs[-1].append(i)
            else:
                outputs.append([i])
        # A segment: consecutive inputs of one output and one group, which sit side by side in
        # the group's gathered rows. Per group: its segments' numbers of positions, in order; per
        # output: its (group, segment) pairs. Tuples, which Keras does not track.
        segment_sizes: List[List[int]] = [[] for _ in keys]
        output_segments: List[List[Tuple[int, int]]] = []
        for members in outputs:
            output_segments.append([])
            for j, i in enumerate(members):
                group = group_of[i]
                if not j or group_of[members[j - 1]] != group:
                    output_segments[-1].append((group, len(segment_sizes[group])))
                    segment_sizes[group].append(0)
                segment_sizes[group][-1] += self._positions(i)
        self._outputs = tuple((self.features[members[0]][4] is not None, tuple(segments))
                              for members, segments in zip(outputs, output_segments))
        self._segment_sizes = tuple(tuple(sizes) for sizes in segment_sizes)
        # Per group: its dimension, trainability, and (input index, first row, vocabulary size)
        # of each input in it, in input order.
        self._groups = tuple(
            (dimension, trainable, tuple(
                (i, *groups[dimension, trainable][self.features[i][0]])
                for i in range(len(self.features)) if group_of[i] == g))
            for g, (dimension, trainable) in enumerate(keys))
        self._table_sizes = tuple(tuple(size for _, size in groups[key].values()) for key in keys)

    def _positions(self, i):
        """The number of ids input `i` takes: its length, 1 for a single id."""
        return self.features[i][4] or 1

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
        """A list of ids, [batch, 1] per single feature and [batch, length] per sequence -> the
        outputs (see the class); an id outside [0, vocabulary size) fails the op."""
        segments = []
        for (_, _, members), table, sizes in zip(self._groups, self.tables, self._segment_sizes):
            positions = [self._positions(i) for i, _, _ in members]
            group_ids = tf.concat([tf.cast(ids[i], tf.int32) for i, _, _ in members], axis=1)
            first_rows = [row for (_, row, _), n in zip(members, positions) for _ in range(n)]
            table_sizes = [size for (_, _, size), n in zip(members, positions) for _ in range(n)]
            # One gather reads every table's rows: an id outside its table would read another's.
            checked = tf.debugging.Assert(
                tf.reduce_all((group_ids >= 0) & (group_ids < table_sizes)),
                ['sparse feature ids must be in [0, vocabulary_size): ' + ', '.join(
                    f'{self.features[i][0]} < {size}' for i, _, size in members)])
            with tf.control_dependencies([checked]):
                rows = tf.gather(table, group_ids + first_rows)  # [batch, positions, dimension]
            # One op whose gradient is one op, rather than a slice per segment: a group of single
            # ids each in a segment of its own unstacks into [batch, dimension] rows; any other
            # splits into its segments.
            if len(sizes) == 1:
                segments.append([rows])
            elif len(sizes) == len(members) and all(self.features[i][4] is None
                                                    for i, _, _ in members):
                segments.append(tf.unstack(rows, axis=1))
            else:
                segments.append(tf.split(rows, sizes, axis=1))
        outputs = []
        for sequence, parts in self._outputs:
            if sequence:
                group, segment = parts[0]
                outputs.append(segments[group][segment])
                continue
            flat = [rows if rows.shape.rank == 2 else
                    tf.reshape(rows, [-1, rows.shape[1] * rows.shape[2]]) for rows in
                    (segments[group][segment] for group, segment in parts)]
            outputs.append(flat[0] if len(flat) == 1 else tf.concat(flat, axis=1))
        return outputs if len(outputs) > 1 or self._outputs[0][0] else outputs[0]

    def compute_output_shape(self, input_shape):
        """The outputs' shapes: (batch, sum of dimensions) per run of single ids, (batch, length,
        dimension) per sequence."""
        batch = input_shape[0][0]
        shapes = []
        for sequence, parts in self._outputs:
            sizes = [(self._segment_sizes[group][segment], self._groups[group][0])
                     for group, segment in parts]
            shapes.append((batch, *sizes[0]) if sequence else
                          (batch, sum(positions * dimension for positions, dimension in sizes)))
        return shapes if len(shapes) > 1 or self._outputs[0][0] else shapes[0]

    def get_config(self):
        """The layer's config with the features, the L2 penalty and the initializer's arguments."""
        return dict(super().get_config(), features=self.features, l2_reg=self.l2_reg,
                    initializer_stddev=self.initializer_stddev, seed=self.seed)


PADDING_BY_LENGTH = 'length'
PADDING_BY_ZERO_ID = 'zero_id'


def _counted(padding, mask_source, maxlen, dtype):
    """[batch, maxlen] of `dtype` (the embeddings': bfloat16 under a mixed precision), 1 where a
    position counts: from [batch, 1] lengths (the first `length` positions, a length clipped to
    [0, maxlen]) or from the [batch, maxlen] ids (those not 0)."""
    if padding == PADDING_BY_LENGTH:
        lengths = tf.clip_by_value(tf.reshape(tf.cast(mask_source, tf.int32), [-1]), 0, maxlen)
        return tf.sequence_mask(lengths, maxlen, dtype=dtype)
    return tf.cast(tf.not_equal(mask_source, tf.zeros([], mask_source.dtype)), dtype)


def _check_padding(padding):
    if padding not in (PADDING_BY_LENGTH, PADDING_BY_ZERO_ID):
        raise ValueError(f"padding must be '{PADDING_BY_LENGTH}' or '{PADDING_BY_ZERO_ID}', "
                         f'got {padding!r}')


class SequencePooling(keras.layers.Layer):
    """DeepCTR's `SequencePoolingLayer`, with its `WeightedSequenceLayer` before it when weights
    are given: a sequence's embeddings [batch, maxlen, dim] -> one [batch, dim] over the positions
    that count.

    Inputs: [embeddings, lengths or ids] or [embeddings, lengths or ids, weights]. With
    `padding='length'` the second is [batch, 1] lengths and the first `length` positions count
    (DeepCTR with a `length_name`); with `padding='zero_id'` it is the [batch, maxlen] ids and the
    positions whose id is not 0 count (DeepCTR's `mask_zero`). Weights, [batch, maxlen, 1], scale
    each position first: softmax over the counted positions when `weight_norm`, else as given, 0
    elsewhere, as DeepCTR's.

    `combiner`: 'sum'; 'mean', the sum over (count + 1e-8), so 0 for no position, as DeepCTR's;
    'max' per dimension, 0 for no position (DeepCTR's gives about -1e9 there). A length beyond
    maxlen counts maxlen positions, and 'mean' divides by that (DeepCTR's by the length given).
    """

    def __init__(self, combiner='mean', padding=PADDING_BY_LENGTH, weight_norm=True, **kwargs):
        if combiner not in ('sum', 'mean', 'max'):
            raise ValueError(f"combiner must be 'sum', 'mean' or 'max', got {combiner!r}")
        _check_padding(padding)
        super().__init__(**kwargs)
        self.combiner = combiner
        self.padding = padding
        self.weight_norm = weight_norm

    def call(self, inputs):
        """[embeddings [batch, maxlen, dim], lengths [batch, 1] or ids [batch, maxlen](, weights
        [batch, maxlen, 1])] -> [batch, dim]."""
        embeddings, mask_source, *weights = inputs
        counted = _counted(self.padding, mask_source, embeddings.shape[1],
                           embeddings.dtype)[:, :, None]
        if weights:  # DeepCTR's padding weights: a softmax's nothing, or 0
            weight = tf.where(counted > 0, tf.cast(weights[0], embeddings.dtype),
                              -2 ** 32 + 1.0 if self.weight_norm else 0.0)
            if self.weight_norm:
                weight = tf.nn.softmax(weight, axis=1)
            embeddings = embeddings * weight
        if self.combiner == 'max':
            lowest = tf.where(counted > 0, embeddings, embeddings.dtype.min)
            return tf.where(tf.reduce_max(counted, axis=1) > 0, tf.reduce_max(lowest, axis=1), 0.0)
        pooled = tf.reduce_sum(embeddings * counted, axis=1)
        if self.combiner == 'mean':
            pooled = pooled / (tf.reduce_sum(counted, axis=1) + 1e-8)
        return pooled

    def compute_output_shape(self, input_shape):
        """(batch, dim)."""
        return (input_shape[0][0], input_shape[0][-1])

    def get_config(self):
        """The layer's config with the combiner, the padding and `weight_norm`."""
        return dict(super().get_config(), combiner=self.combiner, padding=self.padding,
                    weight_norm=self.weight_norm)


class AttentionSequencePooling(keras.layers.Layer):
    """DIN's local activation unit (Zhou et al., KDD 2018), as DeepCTR's
    `AttentionSequencePoolingLayer` without weight normalisation: a query embedding and a
    sequence's embeddings -> [batch, dim], the sum of the counted positions' embeddings, each
    weighted by a score an MLP gives [query, key, query - key, query * key].

    Inputs: [query [batch, 1, dim], keys [batch, maxlen, dim], lengths or ids], the third as
    `SequencePooling`'s `padding` says. The MLP is our `DNN` (`hidden_units`, `activation`, glorot
    normal kernels seeded by `seed`), then a linear score with a bias; a position that does not
    count scores 0, so no history pools to 0. No softmax over the scores, as in DIN: their sum
    carries how strongly the history bears on the query.
    """

    def __init__(self, hidden_units=(80, 40), activation='sigmoid', padding=PADDING_BY_LENGTH,
                 seed=1024, **kwargs):
        _check_padding(padding)
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.padding = padding
        self.seed = seed
        self.mlp = DNN(self.hidden_units, activation, seed=seed, name='mlp')

    def build(self, input_shape):
        """Makes the score's kernel [last hidden units (4 * dim without any), 1] and bias [1]."""
        query_shape, keys_shape = input_shape[0], input_shape[1]
        if query_shape[-1] != keys_shape[-1]:
            raise ValueError(f'{self.name}: the query is of dimension {query_shape[-1]}, the '
                             f'sequence of {keys_shape[-1]}; they must be equal')
        size = self.hidden_units[-1] if self.hidden_units else 4 * int(keys_shape[-1])
        self.kernel = self.add_weight(name='kernel', shape=(size, 1),
                                      initializer=keras.initializers.glorot_normal(seed=self.seed))
        self.bias = self.add_weight(name='bias', shape=(1,), initializer='zeros')
        super().build(input_shape)

    def call(self, inputs, training=None):
        """[query [batch, 1, dim], keys [batch, maxlen, dim], lengths [batch, 1] or ids [batch,
        maxlen]] -> [batch, dim]."""
        query, keys, mask_source = inputs
        queries = tf.broadcast_to(query, tf.shape(keys))
        hidden = self.mlp(tf.concat([queries, keys, queries - keys, queries * keys], axis=-1),
                          training=training)
        scores = tf.nn.bias_add(tf.tensordot(hidden, self.kernel, axes=(-1, 0)), self.bias)
        counted = _counted(self.padding, mask_source, keys.shape[1], keys.dtype)[:, :, None]
        return tf.reduce_sum(scores * counted * keys, axis=1)

    def compute_output_shape(self, input_shape):
        """(batch, dim)."""
        return (input_shape[1][0], input_shape[1][-1])

    def get_config(self):
        """The layer's config with the MLP's arguments, the padding and the seed."""
        return dict(super().get_config(), hidden_units=self.hidden_units,
                    activation=self.activation, padding=self.padding, seed=self.seed)


class MixExperts(keras.layers.Layer):
    """The gate-weighted sum of the experts: ([[batch, dim] per expert], [batch, experts]) ->
    [batch, dim]. A product per expert, not one over [batch, experts, dim] stacked: TensorFlow's
    3-D broadcast product and its gradient cost a large share of a training step
    (docs/performance.md).

    `gate`: the name of the gate whose weights it takes, as the gate report and the `gate_weights`
    signature call it (`models.mixtures` finds the gates and their experts through these layers).
    """

    def __init__(self, gate, **kwargs):
        super().__init__(**kwargs)
        self.gate = gate

    def call(self, inputs):
        """([[batch, dim] per expert], [batch, experts]) -> [batch, dim]."""
        experts, gate = inputs
        return tf.add_n([expert * gate[:, i:i + 1] for i, expert in enumerate(experts)])

    def get_config(self):
        """The layer's config with `gate`."""
        return dict(super().get_config(), gate=self.gate)


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
        self.scale = TASK_TYPES[uncertainty.task_types[index]].uncertainty_scale

    def call(self, y_true, y_pred):
        s = self.uncertainty.log_variance[self.index]
        # The per-example losses (Loss.call), averaged by this Loss's own reduction.
        return self.scale * tf.exp(-s) * self.loss.call(y_true, y_pred) + 0.5 * s
