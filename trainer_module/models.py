"""DeepCTR's multi-task models (`deepctr.models`) on Keras 2, with DeepCTR's signatures and semantics."""

from collections import OrderedDict
from typing import Dict, Sequence

import tf_keras as keras

from compat import autograph  # noqa: F401  (autograph leaves Keras alone)
from trainer_module.feature_column import (
    ATTENTION_COMBINER,
    LENGTH_DTYPE,
    DenseFeat,
    FeatureColumn,
    SparseFeat,
    VarLenSparseFeat,
)
from trainer_module.layers import (
    DNN,
    PADDING_BY_LENGTH,
    PADDING_BY_ZERO_ID,
    AttentionSequencePooling,
    Experts,
    Hash,
    MixExperts,
    PredictionLayer,
    SequencePooling,
    SparseEmbeddings,
)
from trainer_module.settings import TASK_TYPES

EMBEDDING_SEED = 2020  # DeepCTR's default embeddings_initializer seed
GATE_PREFIX = 'gate_softmax_'
SHARED_GATE = 'shared'


def build_input_features(feature_columns: Sequence[FeatureColumn]) -> Dict[str, keras.Input]:
    """One Keras Input per model input, named after it, as DeepCTR's `build_input_features`:
    shape (1,) for sparse ids (or raw values, hashed in the model), (dimension,) for dense values,
    (maxlen,) for a sequence, then (maxlen, 1) float32 for its weights and (1,) `LENGTH_DTYPE`
    for its length where it names them."""
    inputs: Dict[str, keras.Input] = OrderedDict()

    def add(name, shape, dtype):
        if name not in inputs:
            inputs[name] = keras.Input(shape=shape, name=name, dtype=dtype)

    for column in feature_columns:
        if isinstance(column, VarLenSparseFeat):
            add(column.name, (column.maxlen,), column.dtype)
            if column.weight_name is not None:
                add(column.weight_name, (column.maxlen, 1), 'float32')
            if column.length_name is not None:
                add(column.length_name, (1,), LENGTH_DTYPE)
        elif isinstance(column, SparseFeat):
            add(column.name, (1,), column.dtype)
        elif isinstance(column, DenseFeat):
            add(column.name, (column.dimension,), column.dtype)
        else:
            raise ValueError(f'unknown feature column {column!r}')
    return inputs


def _tables(columns):
    """{embedding name: (vocabulary size, dimension, trainable)} of the table each name looks up,
    as DeepCTR's `create_embedding_dict` keeps it: one `Embedding` per name, a sequence's made
    after the single features' and the last made kept."""
    tables = {}
    for column in sorted(columns, key=lambda column: isinstance(column, VarLenSparseFeat)):
        tables[column.embedding_name] = (column.vocabulary_size, column.embedding_dim,
                                         column.trainable)
    return tables


def _queries(sequences, sparse):
    """{sequence name: the SparseFeat its attention queries with}, checked."""
    by_name = {column.name: column for column in sparse}
    queries = {}
    for column in sequences:
        if column.combiner != ATTENTION_COMBINER:
            continue
        query = by_name.get(column.query_name)
        where = f'VarLenSparseFeat {column.name!r}: query_name {column.query_name!r}'
        if query is None:
            raise ValueError(f'{where} is not a SparseFeat of the feature columns')
        if query.embedding_dim != column.embedding_dim:
            raise ValueError(f'{where} has embedding_dim {query.embedding_dim}, the sequence '
                             f'{column.embedding_dim}; attention needs them equal')
        queries[column.name] = query
    return queries


def _pooled(column, embeddings, inputs, ids, query, seed):
    """A sequence's [batch, maxlen, dim] embeddings pooled into [batch, dim] by its combiner, the
    positions that count read from its length input, else from its ids (0: padding)."""
    if column.length_name is not None:
        padding, mask_source = PADDING_BY_LENGTH, inputs[column.length_name]
    else:
        padding, mask_source = PADDING_BY_ZERO_ID, ids
    if column.combiner == ATTENTION_COMBINER:
        return AttentionSequencePooling(padding=padding, seed=seed,
                                        name=f'attention_{column.name}')(
            [query, embeddings, mask_source])
    weights = [inputs[column.weight_name]] if column.weight_name is not None else []
    return SequencePooling(column.combiner, padding, column.weight_norm,
                           name=f'pooling_{column.name}')([embeddings, mask_source, *weights])


def _dnn_input(inputs, feature_columns, l2_reg_embedding, seed):
    """Embeddings of the sparse features and pooled sequences, concatenated with the dense
    values, as DeepCTR's `input_from_feature_columns` + `combined_dnn_input` build them."""
    sparse = [column for column in feature_columns if isinstance(column, SparseFeat)]
    sequences = [column for column in feature_columns if isinstance(column, VarLenSparseFeat)]
    dense = [column for column in feature_columns if isinstance(column, DenseFeat)]
    unknown = [column for column in feature_columns if column not in sparse + sequences + dense]
    if unknown:
        raise ValueError(f'unknown feature column {unknown[0]!r}')
    queries = _queries(sequences, sparse)
    # DeepCTR concatenates the embeddings group by group (`group_name`), groups in order of first
    # use by the single features, then by the sequences (`mergeDict`); in a group, the single
    # features, then the pooled sequences.
    groups = list(dict.fromkeys(column.group_name for column in sparse + sequences))
    embedded = [column for group in groups for column in sparse + sequences
                if column.group_name == group]
    tables = _tables(sparse + sequences)
    ids = {}
    for column in embedded:
        # DeepCTR's Hash: a sequence's with mask_zero (its padding stays 0), a single feature's
        # without.
        ids[column.name] = (Hash(column.vocabulary_size,
                                 mask_zero=isinstance(column, VarLenSparseFeat),
                                 name=f'hash_{column.name}')(inputs[column.name])
                            if column.use_hash else inputs[column.name])
    # Each query's embedding comes out on its own, as a sequence of one id after the others.
    looked_up = embedded + list(queries.values())
    parts = []
    if embedded:
        outputs = SparseEmbeddings(
            [(column.embedding_name, *tables[column.embedding_name],
              column.maxlen if isinstance(column, VarLenSparseFeat) else None)
             for column in embedded]
            + [(query.embedding_name, *tables[query.embedding_name], 1)
               for query in queries.values()],
            l2_reg=l2_reg_embedding, seed=EMBEDDING_SEED, name='sparse_embeddings')(
                [ids[column.name] for column in looked_up])
        outputs = outputs if isinstance(outputs, list) else [outputs]
        query_embeddings = dict(zip(queries, outputs[len(outputs) - len(queries):]))
        outputs = iter(outputs)
        for i, column in enumerate(embedded):
            if isinstance(column, SparseFeat):  # a run of single features is one output
                if not i or isinstance(embedded[i - 1], VarLenSparseFeat):
                    parts.append(next(outputs))
            else:
                parts.append(_pooled(column, next(outputs), inputs, ids[column.name],
                                     query_embeddings.get(column.name), seed))
    if dense:
        values = [inputs[column.name] for column in dense]
        parts.append(values[0] if len(values) == 1 else keras.layers.Concatenate(axis=-1)(values))
    if not parts:
        raise ValueError('dnn_feature_columns is empty')
    return parts[0] if len(parts) == 1 else keras.layers.Concatenate(axis=-1)(parts)


def _check_task_types(task_types, num_tasks):
    if len(task_types) != num_tasks:
        raise ValueError('num_tasks must be equal to the length of task_types')
    for task_type in task_types:
        if task_type not in TASK_TYPES:
            raise ValueError('task must be binary or regression, {} is illegal'.format(task_type))


class _DnnFactory:
    """DNNs with the model's shared arguments (DeepCTR passes the same ones to every DNN)."""

    def __init__(self, activation, l2_reg, dropout, use_bn, seed):
        self.activation, self.l2_reg, self.dropout, self.use_bn, self.seed = (
            activation, l2_reg, dropout, use_bn, seed)

    def __call__(self, hidden_units, name):
        return DNN(hidden_units, self.activation, self.l2_reg, self.dropout, self.use_bn,
                   seed=self.seed, name=name)


def _check_num_tasks(task_names):
    if len(task_names) <= 1:
        raise ValueError('num_tasks must be greater than 1')


def _multi_task_model(inputs, task_inputs, tower_dnn_hidden_units, task_types, task_names,
                      dnn: _DnnFactory) -> keras.Model:
    """Per task: a tower DNN, a bias-free Dense(1) logit, and the prediction layer named after it."""
    outputs = []
    for task_type, task_name, task_input in zip(task_types, task_names, task_inputs):
        tower = dnn(tower_dnn_hidden_units, f'tower_{task_name}')(task_input)
        logit = keras.layers.Dense(
            1, use_bias=False, kernel_initializer=keras.initializers.glorot_uniform(seed=dnn.seed),
            name=f'logit_{task_name}')(tower)
        outputs.append(PredictionLayer(task_type, name=task_name)(logit))
    return keras.Model(inputs=list(inputs.values()), outputs=outputs)


def _mixture_of_experts(dnn_feature_columns, num_experts, expert_dnn_hidden_units,
                        tower_dnn_hidden_units, gate_dnn_hidden_units, l2_reg_embedding,
                        l2_reg_dnn, seed, dnn_dropout, dnn_activation, dnn_use_bn, task_types,
                        task_names, gate_per_task: bool) -> keras.Model:
    """Experts shared by all tasks, mixed by a gate per task (MMOE) or by one shared gate (OMoE)."""
    _check_num_tasks(task_names)
    if num_experts <= 1:
        raise ValueError('num_experts must be greater than 1')
    _check_task_types(task_types, len(task_names))
    dnn = _DnnFactory(dnn_activation, l2_reg_dnn, dnn_dropout, dnn_use_bn, seed)

    inputs = build_input_features(dnn_feature_columns)
    dnn_input = _dnn_input(inputs, dnn_feature_columns, l2_reg_embedding, seed)
    expert_outputs = Experts(num_experts, expert_dnn_hidden_units, activation=dnn_activation,
                             l2_reg=l2_reg_dnn, dropout_rate=dnn_dropout, use_bn=dnn_use_bn,
                             seed=seed, name='experts')(dnn_input)

    def gated_mixture(gate_name):
        gate_input = dnn(gate_dnn_hidden_units, f'gate_{gate_name}')(dnn_input)
        gate = keras.layers.Dense(
            num_experts, use_bias=False, activation='softmax',
            kernel_initializer=keras.initializers.glorot_uniform(seed=seed),
            name=f'{GATE_PREFIX}{gate_name}')(gate_input)
        return MixExperts(name=f'gate_mul_expert_{gate_name}')([expert_outputs, gate])

    if gate_per_task:
        task_inputs = [gated_mixture(task_name) for task_name in task_names]
    else:
        task_inputs = [gated_mixture(SHARED_GATE)] * len(task_names)
    return _multi_task_model(inputs, task_inputs, tower_dnn_hidden_units, task_types, task_names,
                             dnn)


def MMOE(dnn_feature_columns, num_experts=3, expert_dnn_hidden_units=(256, 128),
         tower_dnn_hidden_units=(64,), gate_dnn_hidden_units=(), l2_reg_embedding=0.00001,
         l2_reg_dnn=0, seed=1024, dnn_dropout=0, dnn_activation='relu', dnn_use_bn=False,
         task_types=('binary', 'binary'), task_names=('ctr', 'ctcvr')) -> keras.Model:
    """Multi-gate Mixture-of-Experts (Ma et al., KDD 2018), as `deepctr.models.multitask.MMOE`.

    `num_experts` expert DNNs share the input; each task has a gate (a DNN, then a bias-free softmax
    over the experts) that mixes the experts for its own tower DNN and prediction layer. The model's
    outputs are named after `task_names`: a probability for 'binary', a value for 'regression'.
    """
    return _mixture_of_experts(
        dnn_feature_columns, num_experts, expert_dnn_hidden_units, tower_dnn_hidden_units,
        gate_dnn_hidden_units, l2_reg_embedding, l2_reg_dnn, seed, dnn_dropout, dnn_activation,
        dnn_use_bn, task_types, task_names, gate_per_task=True)


def OMoE(dnn_feature_columns, num_experts=3, expert_dnn_hidden_units=(256, 128),
         tower_dnn_hidden_units=(64,), gate_dnn_hidden_units=(), l2_reg_embedding=0.00001,
         l2_reg_dnn=0, seed=1024, dnn_dropout=0, dnn_activation='relu', dnn_use_bn=False,
         task_types=('binary', 'binary'), task_names=('ctr', 'ctcvr')) -> keras.Model:
    """One-gate Mixture-of-Experts, the paper's OMoE baseline: MMOE's arguments, but a single gate
    mixes the experts for every task."""
    return _mixture_of_experts(
        dnn_feature_columns, num_experts, expert_dnn_hidden_units, tower_dnn_hidden_units,
        gate_dnn_hidden_units, l2_reg_embedding, l2_reg_dnn, seed, dnn_dropout, dnn_activation,
        dnn_use_bn, task_types, task_names, gate_per_task=False)


def SharedBottom(dnn_feature_columns, bottom_dnn_hidden_units=(256, 128),
                 tower_dnn_hidden_units=(64,), l2_reg_embedding=0.00001, l2_reg_dnn=0, seed=1024,
                 dnn_dropout=0, dnn_activation='relu', dnn_use_bn=False,
                 task_types=('binary', 'binary'), task_names=('ctr', 'ctcvr')) -> keras.Model:
    """Shared-Bottom multi-task model, as `deepctr.models.multitask.SharedBottom`: one bottom DNN
    shared by all tasks, then a tower per task."""
    _check_num_tasks(task_names)
    _check_task_types(task_types, len(task_names))
    dnn = _DnnFactory(dnn_activation, l2_reg_dnn, dnn_dropout, dnn_use_bn, seed)
    inputs = build_input_features(dnn_feature_columns)
    bottom = dnn(bottom_dnn_hidden_units, 'shared_bottom')(
        _dnn_input(inputs, dnn_feature_columns, l2_reg_embedding, seed))
    return _multi_task_model(inputs, [bottom] * len(task_names), tower_dnn_hidden_units,
                             task_types, task_names, dnn)


def has_gates(model: keras.Model) -> bool:
    """Whether the model mixes experts through gates (MMOE, OMoE; not SharedBottom)."""
    return any(layer.name.startswith(GATE_PREFIX) for layer in model.layers)


def gate_weights_model(model: keras.Model) -> keras.Model:
    """A model from the same inputs to the gates' softmax outputs, {gate name: [batch, experts]}:
    a gate per task for MMOE, one named 'shared' for OMoE."""
    gates = {layer.name[len(GATE_PREFIX):]: layer.output for layer in model.layers
             if layer.name.startswith(GATE_PREFIX)}
    if not gates:
        raise ValueError(f'{model.name} has no gates (layers named {GATE_PREFIX}*)')
    return keras.Model(inputs=model.inputs, outputs=gates)
