"""The gate report, written beside the SavedModel into `GATE_REPORT_DIR`: each gate's mean weight
per expert on the validation split (`gates.json`, `gates.png`), whether the tasks share experts or
split them. `gates.json` also names the experts and those each gate weighs, and has each gate's
entropy and top expert's share, the experts' pairwise output similarity and warnings of expert
collapse (`trainer_module.expert_use`). The gates are found through the model's structure
(`models.mixtures`): MMOE's gate per task, OMoE's one, every PLE level's. A model without gates
(Shared-Bottom, ESMM) gets a report that says so (`NO_GATES`), and no chart.
"""

import json
import logging
import os
from typing import Any, Dict

import tensorflow as tf
import tf_keras as keras

from trainer_module.expert_use import expert_use_report
from trainer_module.models import gate_weights_model, has_gates
from trainer_module.settings import GATE_REPORT_FILE, PROGRESS_LOGGER

PROGRESS = logging.getLogger(PROGRESS_LOGGER)
# The report's 'note' for a model without gates, as the Trainer's log and the dashboard say it.
NO_GATES = ('this model has no gates: it mixes no experts (Shared-Bottom shares one bottom DNN, '
            'ESMM the embeddings), so there are no gate weights or expert use to report')


def mean_gate_weights(model, dataset) -> dict:
    """{'examples': n, 'gates': {gate: [mean weight of expert i]}} over one pass of `dataset`."""
    gates = gate_weights_model(model)

    # In a graph: called eagerly, batch by batch, the model is many times slower on a large
    # validation split.
    @tf.function(reduce_retracing=True)
    def batch_sums(inputs):
        return {name: tf.reduce_sum(weights, axis=0)
                for name, weights in gates(inputs, training=False).items()}

    sums: Dict[str, Any] = {}  # {gate: [experts] summed weights}
    count = 0
    for inputs, *_ in dataset:  # (inputs, labels) or (inputs, labels, sample weights)
        for name, total in batch_sums(inputs).items():
            sums[name] = sums.get(name, 0.0) + total.numpy()
        count += int(next(iter(inputs.values())).shape[0])
    return {'examples': count, 'gates': {name: (total / count).round(6).tolist()
                                         for name, total in sums.items()}}


def gate_report(model: keras.Model, dataset) -> dict:
    """The report of `model`'s gates over one pass of `dataset` ((model inputs, labels) batches):
    `mean_gate_weights` and `expert_use_report`, logged; for a model without gates, no 'gates'
    and the note that it has none."""
    if not has_gates(model):
        PROGRESS.info('Trainer: %s', NO_GATES)
        return {'gates': {}, 'note': NO_GATES}
    report = mean_gate_weights(model, dataset)
    PROGRESS.info('Trainer mean gate weights per expert: %s', '  '.join(
        f'{gate} [{" ".join(f"{w:.2f}" for w in weights)}]'
        for gate, weights in report['gates'].items()))
    report.update(expert_use_report(model, dataset, report['gates']))
    for warning in report['warnings']:
        PROGRESS.warning('Trainer: %s', warning)
    return report


def write_gate_report(report: dict, out_dir: str):
    """GATE_REPORT_FILE (the report as JSON) and, for a model with gates, gates.png (a bar per
    gate and expert it weighs, over every expert of the model) into `out_dir`."""
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, GATE_REPORT_FILE), 'w') as f:
        f.write(json.dumps(report, indent=2))
    gates = report['gates']
    if not gates:
        return
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    # A report without expert names is one whose gates all weigh the same experts.
    first = len(next(iter(gates.values())))
    gate_experts = report.get('gate_experts') or {
        name: [f'expert {e}' for e in range(first)] for name in gates}
    experts = report.get('experts') or gate_experts[next(iter(gates))]
    width = 0.8 / len(gates)
    figure, axes = pyplot.subplots(figsize=(2.5 + 1.2 * len(experts), 3.5))
    for i, (name, weights) in enumerate(gates.items()):
        axes.bar([experts.index(expert) + i * width for expert in gate_experts[name]], weights,
                 width, label=name)
    axes.set_xticks([e + width * (len(gates) - 1) / 2 for e in range(len(experts))])
    axes.set_xticklabels(experts, rotation=30 if len(experts) > 4 else 0, ha='right'
                         if len(experts) > 4 else 'center', fontsize=8)
    axes.set_ylabel('mean gate weight (validation split)')
    axes.set_title(f'Gate weights over {report["examples"]} validation examples')
    axes.legend(title='gate', bbox_to_anchor=(1.02, 1), loc='upper left')
    figure.tight_layout()
    with tf.io.gfile.GFile(os.path.join(out_dir, 'gates.png'), 'wb') as f:
        figure.savefig(f, format='png', dpi=100)
    pyplot.close(figure)
