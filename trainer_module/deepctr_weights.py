"""Weights of a trained DeepCTR multi-task model, copied into ours.

`copy_deepctr_weights(deepctr_model, model)` takes a DeepCTR 0.9.x `MMOE`, `SharedBottom`, `PLE`
or `ESMM` (a Keras 2 model as `deepctr.models` builds it) and our model built with the same
arguments and feature columns (`trainer_module.models`' function of the same name), and sets every
weight of ours from DeepCTR's: the same predictions for the same inputs
(tests/test_deepctr_parity.py checks them to 1e-5), with sparse features, hashed ones, sequences
(`VarLenSparseFeat`, any of DeepCTR's combiners, with or without a length or weights) and tables
shared between them. The layouts differ: DeepCTR has an `Embedding` layer per table, ours one
variable per embedding dimension (`layers.SparseEmbeddings`), and DeepCTR names a table after a
feature or after a sequence, so each table is found as the one that embeds the same model input in
both (through the `Hash` layers of hashed inputs). Experts and gates carry DeepCTR's names in ours
(an expert's DNN, a gate's DNN and softmax). DeepCTR's logit layers and ESMM's towers have no
names: each prediction layer's logit and tower are found as the layers that feed it, an ESMM's cvr
prediction as the factor of its ctcvr output. DeepCTR itself is not imported: only its model's
layers are read.
"""

from typing import Dict

import numpy as np
import tf_keras as keras

from trainer_module.layers import (
    DNN,
    AttentionSequencePooling,
    Experts,
    Hash,
    PredictionLayer,
    SparseEmbeddings,
)
from trainer_module.models import SHARED_GATE, mixtures


def copy_deepctr_weights(deepctr_model: keras.Model, model: keras.Model) -> keras.Model:
    """Sets the weights of `model` (ours) from `deepctr_model` (DeepCTR's MMOE, SharedBottom, PLE
    or ESMM of the same arguments) and returns `model`. Raises ValueError naming the layer where
    the two models differ (another architecture, other task names, sizes or feature columns)."""
    ours = {layer.name: layer for layer in model.layers}
    theirs = {layer.name: layer for layer in deepctr_model.layers}

    def theirs_named(name):
        if name not in theirs:
            raise ValueError(f'the DeepCTR model has no layer {name!r} (ours has): built with '
                             'other arguments or task names?')
        return theirs[name]

    if any(isinstance(layer, AttentionSequencePooling) for layer in model.layers):
        raise ValueError("DeepCTR's multi-task models have no attention combiner to copy from")
    embeds = _deepctr_embeddings(deepctr_model)
    for layer in model.layers:
        if isinstance(layer, SparseEmbeddings):
            _copy_embeddings(embeds, layer)

    experts = [expert for layer in model.layers if isinstance(layer, Experts)
               for expert in layer.experts]
    for expert in experts:
        _copy_dnn(theirs_named(expert.name), expert)
    # DeepCTR's expert DNNs are the ones named for experts (MMOE's expert_<i>, PLE's
    # ..._expert_specific_<j> and ..._expert_shared_<k>).
    extra = sorted(name for name, layer in theirs.items() if type(layer).__name__ == 'DNN'
                   and 'expert' in name and name not in {expert.name for expert in experts})
    if extra:
        raise ValueError(f'the DeepCTR model has experts ours has not: {extra}')
    if 'shared_bottom' in ours:
        task = model.output_names[0]
        _copy_dnn(_feeding(theirs_named(f'tower_{task}')), ours['shared_bottom'])

    for mixture in mixtures(model):
        softmax = mixture.weights._keras_history.layer  # pylint: disable=protected-access
        if softmax.name not in theirs and mixture.gate == SHARED_GATE:
            raise ValueError('DeepCTR has no one-gate model (OMoE) to copy from')
        gate_dnn = _feeding(softmax)
        _copy_dnn(theirs_named(gate_dnn.name), gate_dnn)
        _assign(softmax, theirs_named(softmax.name).get_weights())

    for layer in model.layers:
        if isinstance(layer, PredictionLayer):
            prediction = _deepctr_prediction(model, theirs_named, layer)
            logit, their_logit = _feeding(layer), _feeding(prediction)
            _copy_dnn(_feeding(their_logit), _feeding(logit))
            _assign(logit, their_logit.get_weights())
            _assign(layer, prediction.get_weights())
    return model


def _deepctr_prediction(model, theirs_named, layer: PredictionLayer):
    """DeepCTR's prediction layer that is `layer`: the task output of its name, or, for a
    prediction that is no output (ESMM's cvr), the same factor of the output it feeds."""
    if layer.name in model.output_names:
        return theirs_named(layer.name)
    for node in layer.outbound_nodes:
        output = node.outbound_layer
        if output.name in model.output_names:
            inbound = output.inbound_nodes[0].inbound_layers
            return theirs_named(output.name).inbound_nodes[0].inbound_layers[inbound.index(layer)]
    raise ValueError(f'layer {layer.name!r}: a prediction that feeds no output of ours')


def _model_input(layer):
    """The name of the model input that `layer` is, or that it hashes (a `Hash` layer: ours, or
    DeepCTR's, known by its class name)."""
    while isinstance(layer, Hash) or type(layer).__name__ == 'Hash':
        layer = _feeding(layer)
    if not isinstance(layer, keras.layers.InputLayer):
        raise ValueError(f'layer {layer.name!r} feeds an embedding, and is no model input')
    return layer.name


def _deepctr_embeddings(deepctr_model):
    """{model input name: the DeepCTR `Embedding` layer that looks it up}."""
    embeds = {}
    for layer in deepctr_model.layers:
        if isinstance(layer, keras.layers.Embedding):
            for node in layer.inbound_nodes:
                embeds[_model_input(node.inbound_layers)] = layer
    return embeds


def _copy_embeddings(embeds, layer: SparseEmbeddings):
    """Each table of `layer` from the DeepCTR `Embedding` that looks up the same model input."""
    tables: Dict[str, keras.layers.Layer] = {}
    for feature, source in zip(layer.features, layer.inbound_nodes[0].inbound_layers):
        name = _model_input(source)
        if name not in embeds:
            raise ValueError(f'the DeepCTR model embeds no input {name!r} (ours does): built '
                             'with other feature columns?')
        theirs = embeds[name]
        if tables.setdefault(feature[0], theirs) is not theirs:
            raise ValueError(f'table {feature[0]!r}: DeepCTR looks its inputs up in two tables, '
                             f'{tables[feature[0]].name!r} and {theirs.name!r}')
    layer.set_tables({name: theirs.get_weights()[0] for name, theirs in tables.items()})


def _feeding(layer):
    """The one layer whose output `layer` takes."""
    inbound = layer.inbound_nodes[0].inbound_layers
    return inbound[0] if isinstance(inbound, list) else inbound


def _assign(layer, values):
    expected = [tuple(w.shape) for w in layer.get_weights()]
    given = [tuple(np.shape(v)) for v in values]
    if expected != given:
        raise ValueError(f'layer {layer.name!r}: DeepCTR weights of shapes {given}, ours {expected}')
    layer.set_weights(values)


def _copy_dnn(theirs, ours: DNN):
    """DeepCTR's DNN (`kernels`, `bias`, `bn_layers`) into ours (`kernels`, `biases`,
    `bn_layers`)."""
    if len(theirs.kernels) != len(ours.kernels) or theirs.use_bn != ours.use_bn:
        raise ValueError(f'layer {ours.name!r}: DeepCTR has {len(theirs.kernels)} hidden layers '
                         f'(use_bn={theirs.use_bn}), ours {len(ours.kernels)} '
                         f'(use_bn={ours.use_bn})')
    for i, (kernel, bias) in enumerate(zip(theirs.kernels, theirs.bias)):
        for variable, value, what in ((ours.kernels[i], kernel, 'kernel'),
                                      (ours.biases[i], bias, 'bias')):
            if tuple(variable.shape) != tuple(value.shape):
                raise ValueError(f'layer {ours.name!r}: DeepCTR {what}{i} is '
                                 f'{tuple(value.shape)}, ours {tuple(variable.shape)}')
            variable.assign(value)
        if ours.use_bn:
            _assign(ours.bn_layers[i], theirs.bn_layers[i].get_weights())
