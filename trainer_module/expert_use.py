"""Expert collapse and gate use, for the gate report: do the experts differ, and do the gates use them?

The gates and experts are found through the model's structure (`models.mixtures`: what each
`MixExperts` layer weighs), whatever the architecture: MMOE's gate per task over its experts,
OMoE's one, each PLE level's task gates (over the task's own experts and the shared ones) and
shared gate (over all of the level's). A mixture can train into a state where its experts compute
nearly the same function (every expert starts from the same seeded weights, as in DeepCTR) or
where a gate sends nearly all of a task's weight to one expert; either way the mixture is one
network in effect. Per gate, from its mean weights over the validation split: the entropy (nats;
ln(experts) when the weights are even, 0 when one expert takes all) and the top expert's share.
For the experts: the cosine similarity of each pair's outputs, per validation example, averaged,
for two experts that gates weigh together (every expert of an MMOE; of a PLE, those of one level).
`warnings` says when a gate puts more than GATE_TOP_SHARE on one expert or two experts' outputs
are more alike than EXPERT_SIMILARITY.
"""

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras as keras

from trainer_module.models import Mixture, expert_outputs, mixtures

GATE_TOP_SHARE = 0.9
EXPERT_SIMILARITY = 0.99


def gate_use(mean_weights: Dict[str, Sequence[float]]) -> Dict[str, Dict]:
    """{gate: {'entropy', 'max_entropy', 'top_expert', 'top_share'}} from {gate: mean weight per
    expert it weighs}; 'top_expert' is the top expert's index among those."""
    result = {}
    for gate, weights in mean_weights.items():
        top = max(range(len(weights)), key=lambda i: weights[i])
        result[gate] = {
            'entropy': round(-sum(w * math.log(w) for w in weights if w > 0), 6),
            'max_entropy': round(math.log(len(weights)), 6),
            'top_expert': top,
            'top_share': round(float(weights[top]), 6)}
    return result


def expert_groups(gates: Sequence[Mixture]) -> List[List[str]]:
    """The experts' names in groups of those that gates weigh together, directly or through
    another expert (connected components): MMOE's experts are one group, each PLE level's
    another. No gate chooses between experts of different groups, so their similarity says
    nothing of collapse."""
    groups: List[List[str]] = []
    for gate in gates:
        joined = [group for group in groups if set(group) & set(gate.expert_names)]
        merged = [name for group in joined for name in group]
        merged += [name for name in gate.expert_names if name not in merged]
        groups = [group for group in groups if group not in joined] + [merged]
    return groups


def expert_similarity(model: keras.Model, dataset: tf.data.Dataset
                      ) -> List[List[Optional[float]]]:
    """[i][j]: the cosine similarity of the outputs of experts i and j (`models.expert_outputs`'
    order) for an example, averaged over one pass of `dataset` ((inputs, labels) batches); None
    for two experts of different groups (`expert_groups`)."""
    outputs = expert_outputs(model)
    names = list(outputs)
    groups = expert_groups(mixtures(model))
    experts = keras.Model(inputs=model.inputs, outputs=outputs)

    @tf.function(reduce_retracing=True)  # a graph: eagerly, the model costs more than its math
    def batch_sums(inputs):
        values = experts(inputs, training=False)
        sums = []
        for group in groups:
            stacked = tf.math.l2_normalize(tf.stack([values[name] for name in group], axis=1),
                                           axis=-1)
            # [batch, experts, experts] cosines, summed over the batch
            sums.append(tf.reduce_sum(tf.matmul(stacked, stacked, transpose_b=True), axis=0))
        return sums

    totals: List[Any] = [0.0] * len(groups)  # then [experts, experts] arrays
    count = 0
    for inputs, *_ in dataset:  # (inputs, labels) or (inputs, labels, sample weights)
        totals = [total + batch.numpy() for total, batch in zip(totals, batch_sums(inputs))]
        count += int(next(iter(inputs.values())).shape[0])
    similarity: List[List[Optional[float]]] = [[None] * len(names) for _ in names]
    for group, total in zip(groups, totals):
        means = (total / count).round(6).tolist()
        for i, first in enumerate(group):
            for j, second in enumerate(group):
                similarity[names.index(first)][names.index(second)] = means[i][j]
    return similarity


def collapse_warnings(uses: Dict[str, Dict], gate_experts: Mapping[str, Sequence[str]],
                      experts: Sequence[str],
                      similarity: Sequence[Sequence[Optional[float]]]) -> List[str]:
    """What the run summary and the dashboard warn about, naming the experts as `experts` (the
    similarity's order) and `gate_experts` ({gate: the experts it weighs}) do."""
    warnings = [f"gate {gate!r} puts {use['top_share']:.2f} of its weight on "
                f"{gate_experts[gate][use['top_expert']]} (more than {GATE_TOP_SHARE}): the task "
                f'uses one expert'
                for gate, use in uses.items() if use['top_share'] > GATE_TOP_SHARE]
    warnings += [f'{experts[i]} and {experts[j]} are near-identical: their outputs have a cosine '
                 f'similarity of {similarity[i][j]:.3f} (above {EXPERT_SIMILARITY})'
                 for i in range(len(similarity)) for j in range(i + 1, len(similarity))
                 if (similarity[i][j] or 0.0) > EXPERT_SIMILARITY]
    return warnings


def expert_use_report(model: keras.Model, dataset: tf.data.Dataset,
                      mean_weights: Dict[str, Sequence[float]]) -> Dict:
    """The gate report's 'experts' (their names), 'gate_experts' ({gate: the names of the
    experts it weighs, in its weights' order}), 'gate_use', 'expert_similarity' and 'warnings',
    on one pass of `dataset`, given the gates' mean weights on it."""
    gate_experts = {gate.gate: list(gate.expert_names) for gate in mixtures(model)}
    experts = list(expert_outputs(model))
    uses = gate_use(mean_weights)
    similarity = expert_similarity(model, dataset)
    return {'experts': experts, 'gate_experts': gate_experts, 'gate_use': uses,
            'expert_similarity': similarity,
            'warnings': collapse_warnings(uses, gate_experts, experts, similarity)}
