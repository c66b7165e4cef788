"""The gate report, written beside the SavedModel into `GATE_REPORT_DIR`: each task's mean gate
weight per expert on the validation split (`gates.json`, `gates.png`), whether the tasks share
experts or split them. `gates.json` also has each gate's entropy and top expert's share, the
experts' pairwise output similarity and warnings of expert collapse (`trainer_module.expert_use`).
A model without gates (Shared-Bottom) has no report.
"""

import json
import logging
import os
from typing import Any, Dict, Optional

import tensorflow as tf
import tf_keras as keras

from trainer_module.expert_use import expert_use_report
from trainer_module.models import gate_weights_model, has_gates
from trainer_module.settings import GATE_REPORT_FILE, PROGRESS_LOGGER

PROGRESS = logging.getLogger(PROGRESS_LOGGER)


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
    for inputs, _ in dataset:
        for name, total in batch_sums(inputs).items():
            sums[name] = sums.get(name, 0.0) + total.numpy()
        count += int(next(iter(inputs.values())).shape[0])
    return {'examples': count, 'gates': {name: (total / count).round(6).tolist()
                                         for name, total in sums.items()}}


def gate_report(model: keras.Model, dataset) -> Optional[dict]:
    """The report of `model`'s gates over one pass of `dataset` ((model inputs, labels) batches):
    `mean_gate_weights` and `expert_use_report`, logged; None for a model without gates."""
    if not has_gates(model):
        return None
    report = mean_gate_weights(model, dataset)
    PROGRESS.info('Trainer mean gate weights per expert: %s', '  '.join(
        f'{gate} [{" ".join(f"{w:.2f}" for w in weights)}]'
        for gate, weights in report['gates'].items()))
    report.update(expert_use_report(model, dataset, report['gates']))
    for warning in report['warnings']:
        PROGRESS.warning('Trainer: %s', warning)
    return report


def write_gate_report(report: dict, out_dir: str):
    """GATE_REPORT_FILE (the report as JSON) and gates.png (a bar per task and expert) into
    `out_dir`."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, GATE_REPORT_FILE), 'w') as f:
        f.write(json.dumps(report, indent=2))
    gates = report['gates']
    num_experts = len(next(iter(gates.values())))
    width = 0.8 / len(gates)
    figure, axes = pyplot.subplots(figsize=(2.5 + 1.2 * num_experts, 3.5))
    for i, (name, weights) in enumerate(gates.items()):
        axes.bar([e + i * width for e in range(num_experts)], weights, width, label=name)
    axes.set_xticks([e + width * (len(gates) - 1) / 2 for e in range(num_experts)])
    axes.set_xticklabels([f'expert {e}' for e in range(num_experts)])
    axes.set_ylabel('mean gate weight (validation split)')
    axes.set_title(f'Gate weights over {report["examples"]} validation examples')
    axes.legend(title='task', bbox_to_anchor=(1.02, 1), loc='upper left')
    figure.tight_layout()
    with tf.io.gfile.GFile(os.path.join(out_dir, 'gates.png'), 'wb') as f:
        figure.savefig(f, format='png', dpi=100)
    pyplot.close(figure)
