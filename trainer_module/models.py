"""DeepCTR's multi-task models (`deepctr.models`) on Keras 2, with DeepCTR's signatures and semantics."""

from collections import OrderedDict
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

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
from trainer_module.task_types import TASK_TYPES

EMBEDDING_SEED = 2020  # DeepCTR's default embeddings_initializer seed
SHARED_GATE = 'shared'  # OMoE's one gate; PLE's shared gates are level_<l>_shared


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
    """DNNs and experts with the model's shared arguments (DeepCTR passes the same ones to every
    DNN)."""

    def __init__(self, activation, l2_reg, dropout, use_bn, seed):
        self.activation, self.l2_reg, self.dropout, self.use_bn, self.seed = (
            activation, l2_reg, dropout, use_bn, seed)

    def __call__(self, hidden_units, name):
        return DNN(hidden_units, self.activation, self.l2_reg, self.dropout, self.use_bn,
                   seed=self.seed, name=name)

    def experts(self, hidden_units, names, name):
        """An `Experts` layer of one expert DNN per name in `names`."""
        return Experts(len(names), hidden_units, activation=self.activation, l2_reg=self.l2_reg,
                       dropout_rate=self.dropout, use_bn=self.use_bn, seed=self.seed, names=names,
                       name=name)


def _check_num_tasks(task_names):
    if len(task_names) <= 1:
        raise ValueError('num_tasks must be greater than 1')


def _task_output(task_input, task_type, name, tower_dnn_hidden_units, dnn: _DnnFactory):
    """A task's tower DNN, its bias-free Dense(1) logit and its prediction layer, named `name`."""
    tower = dnn(tower_dnn_hidden_units, f'tower_{name}')(task_input)
    logit = keras.layers.Dense(
        1, use_bias=False, kernel_initializer=keras.initializers.glorot_uniform(seed=dnn.seed),
        name=f'logit_{name}')(tower)
    # float32 under a mixed precision too: the losses, metrics and served predictions are.
    return PredictionLayer(task_type, name=name, dtype='float32')(logit)


def _multi_task_model(inputs, task_inputs, tower_dnn_hidden_units, task_types, task_names,
                      dnn: _DnnFactory) -> keras.Model:
    """Per task: a tower DNN, a bias-free Dense(1) logit, and the prediction layer named after it."""
    outputs = [_task_output(task_input, task_type, task_name, tower_dnn_hidden_units, dnn)
               for task_type, task_name, task_input in zip(task_types, task_names, task_inputs)]
    return keras.Model(inputs=list(inputs.values()), outputs=outputs)


def _gated_mixture(experts, gate_input, gate, gate_dnn_hidden_units, dnn: _DnnFactory, prefix,
                   suffix):
    """`experts` ([batch, dim] each) mixed by a gate on `gate_input`: a gate DNN, a bias-free
    softmax over the experts, their weighted sum. The layers carry DeepCTR's names,
    `{prefix}gate{suffix}`, `{prefix}gate_softmax{suffix}` and `{prefix}gate_mul_expert{suffix}`;
    `gate` is the gate's name in the gate report."""
    hidden = dnn(gate_dnn_hidden_units, f'{prefix}gate{suffix}')(gate_input)
    weights = keras.layers.Dense(
        len(experts), use_bias=False, activation='softmax',
        kernel_initializer=keras.initializers.glorot_uniform(seed=dnn.seed),
        name=f'{prefix}gate_softmax{suffix}')(hidden)
    return MixExperts(gate, name=f'{prefix}gate_mul_expert{suffix}')([experts, weights])


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
    expert_outputs = dnn.experts(expert_dnn_hidden_units,
                                 [f'expert_{i}' for i in range(num_experts)], 'experts')(dnn_input)

    def gated_mixture(gate):
        return _gated_mixture(expert_outputs, dnn_input, gate, gate_dnn_hidden_units, dnn, '',
                              f'_{gate}')

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


def PLE(dnn_feature_columns, shared_expert_num=1, specific_expert_num=1, num_levels=2,
        expert_dnn_hidden_units=(256,), tower_dnn_hidden_units=(64,), gate_dnn_hidden_units=(),
        l2_reg_embedding=0.00001, l2_reg_dnn=0, seed=1024, dnn_dropout=0, dnn_activation='relu',
        dnn_use_bn=False, task_types=('binary', 'binary'),
        task_names=('ctr', 'ctcvr')) -> keras.Model:
    """Progressive Layered Extraction (Tang et al., RecSys 2020), as
    `deepctr.models.multitask.PLE`: `num_levels` extraction levels (CGC), each with
    `specific_expert_num` experts per task and `shared_expert_num` shared experts. A task's gate
    mixes its own experts and the shared ones; below the last level a shared gate also mixes
    every expert of the level for the next level's shared experts. Each level's experts and gates
    read the previous level's mixture of their task (shared: the shared mixture); the first
    level's read the embeddings. Then a tower per task, as MMOE's.

    DeepCTR's errors; also a ValueError where DeepCTR builds nothing usable: `num_levels` below 1
    (a model without outputs), no expert at all, a negative number of experts.
    """
    _check_num_tasks(task_names)
    _check_task_types(task_types, len(task_names))
    if num_levels < 1:
        raise ValueError('num_levels must be at least 1')
    if specific_expert_num < 0 or shared_expert_num < 0:
        raise ValueError('specific_expert_num and shared_expert_num must be 0 or more')
    if specific_expert_num + shared_expert_num < 1:
        raise ValueError('PLE needs at least one expert per task: specific_expert_num + '
                         'shared_expert_num must be at least 1')
    dnn = _DnnFactory(dnn_activation, l2_reg_dnn, dnn_dropout, dnn_use_bn, seed)
    inputs = build_input_features(dnn_feature_columns)
    dnn_input = _dnn_input(inputs, dnn_feature_columns, l2_reg_embedding, seed)

    def experts(count, names, name, level_input):
        return dnn.experts(expert_dnn_hidden_units, names, name)(level_input) if count else []

    # Each level reads one input per task, then the shared one.
    level_inputs = [dnn_input] * (len(task_names) + 1)
    for level in range(num_levels):
        prefix = f'level_{level}_'
        specific = [experts(specific_expert_num,
                            [f'{prefix}task_{task}_expert_specific_{j}'
                             for j in range(specific_expert_num)],
                            f'{prefix}task_{task}_experts_specific', task_input)
                    for task, task_input in zip(task_names, level_inputs)]
        shared = experts(shared_expert_num,
                         [f'{prefix}expert_shared_{k}' for k in range(shared_expert_num)],
                         f'{prefix}experts_shared', level_inputs[-1])
        outputs = [_gated_mixture(own + shared, task_input, f'{prefix}{task}',
                                  gate_dnn_hidden_units, dnn, prefix, f'_specific_{task}')
                   for task, own, task_input in zip(task_names, specific, level_inputs)]
        if level < num_levels - 1:
            outputs.append(_gated_mixture(
                [expert for own in specific for expert in own] + shared, level_inputs[-1],
                f'{prefix}{SHARED_GATE}', gate_dnn_hidden_units, dnn, prefix, '_shared'))
        level_inputs = outputs
    return _multi_task_model(inputs, level_inputs, tower_dnn_hidden_units, task_types, task_names,
                             dnn)


def esmm_cvr_name(task_names: Sequence[str]) -> str:
    """The name of an ESMM's cvr prediction: `<ctcvr task>_given_<ctr task>`, the probability of
    the second task's label given the first's (a conversion given a click)."""
    return f'{task_names[1]}_given_{task_names[0]}'


def ESMM(dnn_feature_columns, tower_dnn_hidden_units=(256, 128, 64), l2_reg_embedding=0.00001,
         l2_reg_dnn=0, seed=1024, dnn_dropout=0, dnn_activation='relu', dnn_use_bn=False,
         task_types=('binary', 'binary'), task_names=('ctr', 'ctcvr')) -> keras.Model:
    """Entire Space Multi-task Model (Ma et al., SIGIR 2018), as `deepctr.models.multitask.ESMM`:
    a ctr tower and a cvr tower over the shared embeddings, and the outputs ctr and ctcvr = ctr x
    cvr, so that both train on every row (entire space) and cvr only through their product.

    DeepCTR's outputs, in its order: `task_names[0]` (ctr) and `task_names[1]` (ctcvr). The cvr
    probability is a prediction layer of the model, not an output, so that scripts written for
    DeepCTR's two outputs run unchanged; `predictions_model(model)` gives it, named
    `esmm_cvr_name(task_names)`, and the Trainer's SavedModel serves it beside the tasks'.
    """
    if len(task_names) != 2:
        raise ValueError('the length of task_names must be equal to 2')
    for task_type in task_types:
        if task_type != 'binary':
            raise ValueError('task must be binary in ESMM, {} is illegal'.format(task_type))
    dnn = _DnnFactory(dnn_activation, l2_reg_dnn, dnn_dropout, dnn_use_bn, seed)
    inputs = build_input_features(dnn_feature_columns)
    dnn_input = _dnn_input(inputs, dnn_feature_columns, l2_reg_embedding, seed)
    ctr = _task_output(dnn_input, 'binary', task_names[0], tower_dnn_hidden_units, dnn)
    cvr = _task_output(dnn_input, 'binary', esmm_cvr_name(task_names), tower_dnn_hidden_units,
                       dnn)
    ctcvr = keras.layers.Multiply(name=task_names[1], dtype='float32')([ctr, cvr])
    return keras.Model(inputs=list(inputs.values()), outputs=[ctr, ctcvr])


class Mixture(NamedTuple):
    """A gate's mixture of experts, as the model wires it (a `MixExperts` layer and its inputs):
    the gate's name, its softmax weights ([batch, experts] Keras tensor) and the experts it
    weighs, in its weights' order, each as (its `Experts` layer, its index there)."""
    gate: str
    weights: Any
    experts: Tuple[Tuple[Experts, int], ...]

    @property
    def expert_names(self) -> Tuple[str, ...]:
        """The names of the experts the gate weighs, in its weights' order."""
        return tuple(layer.names[index] for layer, index in self.experts)


def mixtures(model: keras.Model) -> List[Mixture]:
    """Every gated mixture of `model`, found through its `MixExperts` layers: MMOE's gate per task,
    OMoE's one, each PLE level's task gates and shared gate; none for SharedBottom and ESMM."""
    found = []
    for layer in model.layers:
        if isinstance(layer, MixExperts):
            expert_outputs, weights = layer.inbound_nodes[0].call_args[0]
            experts = []
            for output in expert_outputs:
                source, _, index = output._keras_history  # pylint: disable=protected-access
                if not isinstance(source, Experts):
                    raise ValueError(f'{layer.name} mixes {source.name!r}, which is no Experts '
                                     'layer')
                experts.append((source, index))
            found.append(Mixture(layer.gate, weights, tuple(experts)))
    return found


def has_gates(model: keras.Model) -> bool:
    """Whether the model mixes experts through gates (MMOE, OMoE, PLE; not SharedBottom, ESMM)."""
    return bool(mixtures(model))


def gate_weights_model(model: keras.Model) -> keras.Model:
    """A model from the same inputs to the gates' softmax outputs, {gate name: [batch, experts]}:
    a gate per task for MMOE, one named 'shared' for OMoE, `level_<l>_<task>` and
    `level_<l>_shared` for PLE."""
    gates = {mixture.gate: mixture.weights for mixture in mixtures(model)}
    if not gates:
        raise ValueError(f'{model.name} has no gates (no layer mixes experts)')
    return keras.Model(inputs=model.inputs, outputs=gates)


def expert_outputs(model: keras.Model) -> Dict[str, Any]:
    """{expert name: its [batch, units] output (Keras tensor)} of every expert of `model`, in the
    order the model builds them."""
    outputs: Dict[str, Any] = {}
    for layer in model.layers:
        if isinstance(layer, Experts):
            # Keras gives a layer of one output that output, not a list of it.
            layer_outputs = layer.output if isinstance(layer.output, list) else [layer.output]
            outputs.update(zip(layer.names, layer_outputs))
    return outputs


def predictions_model(model: keras.Model) -> keras.Model:
    """A model from the same inputs to every prediction `model` makes, {name: [batch, 1]}: its
    outputs, named after the tasks, then each prediction layer that is no output (an ESMM's cvr,
    which its ctcvr output multiplies by the ctr)."""
    outputs = dict(zip(model.output_names, model.outputs))
    for layer in model.layers:
        if isinstance(layer, PredictionLayer) and layer.name not in outputs:
            outputs[layer.name] = layer.output
    return keras.Model(inputs=model.inputs, outputs=outputs)
