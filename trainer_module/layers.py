"""Keras layers of the multi-task models, wired as DeepCTR 0.9.3 wires them, without Lambda layers
so that the models save as SavedModels and serve."""

import tensorflow as tf
import tf_keras as keras


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

    def build(self, input_shape):
        sizes = (int(input_shape[-1]),) + self.hidden_units
        self.kernels = [
            self.add_weight(name=f'kernel{i}', shape=(sizes[i], sizes[i + 1]),
                            initializer=keras.initializers.glorot_normal(seed=self.seed),
                            regularizer=keras.regularizers.l2(self.l2_reg))
            for i in range(len(self.hidden_units))]
        self.biases = [
            self.add_weight(name=f'bias{i}', shape=(units,), initializer='zeros')
            for i, units in enumerate(self.hidden_units)]
        self.bn_layers = ([keras.layers.BatchNormalization() for _ in self.hidden_units]
                          if self.use_bn else [])
        self.activation_layers = [keras.layers.Activation(self.activation) for _ in self.hidden_units]
        self.dropout_layers = [keras.layers.Dropout(self.dropout_rate, seed=self.seed + i)
                               for i in range(len(self.hidden_units))]
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        for i in range(len(self.hidden_units)):
            x = tf.nn.bias_add(tf.tensordot(x, self.kernels[i], axes=(-1, 0)), self.biases[i])
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


class StackExperts(keras.layers.Layer):
    """[batch, dim] x num_experts -> [batch, num_experts, dim]."""

    def call(self, experts):
        return tf.stack(experts, axis=1)


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
