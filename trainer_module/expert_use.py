"""Expert collapse and gate use, for the gate report: do the experts differ, and do the gates use them?

An MMOE can train into a state where its experts compute nearly the same function (every expert
starts from the same seeded weights, as in DeepCTR) or where a gate sends nearly all of a task's
weight to one expert; either way the mixture is one network in effect. Per gate, from its mean
weights over the validation split: the entropy (nats; ln(num_experts) when the weights are even, 0
when one expert takes all) and the top expert's share. For the experts: the cosine similarity of each
pair's outputs, per validation example, averaged. `warnings` says when a gate puts more than
GATE_TOP_SHARE on one expert or two experts' outputs are more alike than EXPERT_SIMILARITY.
"""

import math
from typing import Any, Dict, List, Sequence

import tensorflow as tf
import tf_keras as keras

GATE_TOP_SHARE = 0.9
EXPERT_SIMILARITY = 0.99
EXPERTS_LAYER = 'experts'  # trainer_module.models' layer of the experts


def gate_use(mean_weights: Dict[str, Sequence[float]]) -> Dict[str, Dict]:
    """{gate: {'entropy', 'max_entropy', 'top_expert', 'top_share'}} from {gate: mean weight per
    expert}."""
    result = {}
    for gate, weights in mean_weights.items():
        top = max(range(len(weights)), key=lambda i: weights[i])
        result[gate] = {
            'entropy': round(-sum(w * math.log(w) for w in weights if w > 0), 6),
            'max_entropy': round(math.log(len(weights)), 6),
            'top_expert': top,
            'top_share': round(float(weights[top]), 6)}
    return result


def expert_similarity(model: keras.Model, dataset: tf.data.Dataset) -> List[List[float]]:
    """[i][j]: the cosine similarity of experts i's and j's outputs for an example, averaged over
    one pass of `dataset` ((inputs, labels) batches)."""
    experts = keras.Model(inputs=model.inputs, outputs=model.get_layer(EXPERTS_LAYER).output)

    @tf.function(reduce_retracing=True)  # a graph: eagerly, the model costs more than its math
    def batch_sum(inputs):
        outputs = tf.math.l2_normalize(tf.stack(experts(inputs, training=False), axis=1), axis=-1)
        # [batch, experts, experts] cosines, summed over the batch
        return tf.reduce_sum(tf.matmul(outputs, outputs, transpose_b=True), axis=0)

    total: Any = 0.0  # then an [experts, experts] array
    count = 0
    for inputs, _ in dataset:
        total = total + batch_sum(inputs).numpy()
        count += int(next(iter(inputs.values())).shape[0])
    return (total / count).round(6).tolist()


def collapse_warnings(uses: Dict[str, Dict], similarity: List[List[float]]) -> List[str]:
    """What the run summary and the dashboard warn about."""
    warnings = [f"gate {gate!r} puts {use['top_share']:.2f} of its weight on expert "
                f"{use['top_expert']} (more than {GATE_TOP_SHARE}): the task uses one expert"
                for gate, use in uses.items() if use['top_share'] > GATE_TOP_SHARE]
    warnings += [f'experts {i} and {j} are near-identical: their outputs have a cosine '
                 f'similarity of {similarity[i][j]:.3f} (above {EXPERT_SIMILARITY})'
                 for i in range(len(similarity)) for j in range(i + 1, len(similarity))
                 if similarity[i][j] > EXPERT_SIMILARITY]
    return warnings


def expert_use_report(model: keras.Model, dataset: tf.data.Dataset,
                      mean_weights: Dict[str, Sequence[float]]) -> Dict:
    """The gate report's 'gate_use', 'expert_similarity' and 'warnings', on one pass of
    `dataset`, given the gates' mean weights on it."""
    uses = gate_use(mean_weights)
    similarity = expert_similarity(model, dataset)
    return {'gate_use': uses, 'expert_similarity': similarity,
            'warnings': collapse_warnings(uses, similarity)}
