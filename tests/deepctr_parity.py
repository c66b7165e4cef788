"""Model configurations measured the same way under DeepCTR 0.9.3 and under trainer_module.

Run as a script in a DeepCTR venv (TensorFlow 2.10: DeepCTR imports on no later one), it writes the
measurements of DeepCTR's models as JSON to the file named by its argument (DeepCTR prints a version
notice on stdout); tests/test_deepctr_parity.py compares ours with them.
"""

import json
import sys

import numpy as np

MMOE_CONFIGS = {
    'defaults': {},
    'gate_dnn_and_towers': dict(gate_dnn_hidden_units=(16, 8), tower_dnn_hidden_units=(32, 16),
                                num_experts=4),
    'bn_with_regression': dict(dnn_use_bn=True, dnn_dropout=0.2, l2_reg_dnn=1e-4,
                               task_types=('binary', 'regression'), task_names=('ctr', 'price')),
    'three_tasks': dict(task_types=('binary', 'binary', 'regression'),
                        task_names=('click', 'like', 'watch'), expert_dnn_hidden_units=(64,)),
}
SHARED_BOTTOM_CONFIGS = {
    'shared_bottom_defaults': {},
    'shared_bottom_bn_regression': dict(dnn_use_bn=True, task_types=('binary', 'regression')),
}
ERROR_CONFIGS = {
    'one_task': dict(task_types=('binary',), task_names=('ctr',)),
    'one_expert': dict(num_experts=1),
    'lengths_differ': dict(task_types=('binary',)),
    'unknown_task_type': dict(task_types=('binary', 'multiclass')),
}


def feature_columns(feature_column):
    return ([feature_column.SparseFeat(f'cat_{i}', vocabulary_size=vocabulary, embedding_dim=dim)
             for i, (vocabulary, dim) in enumerate([(1000, 8), (50, 4), (7, 4), (24, 8)])]
            + [feature_column.DenseFeat(f'num_{i}', 1) for i in range(3)])


def _counts(model):
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    return {'trainable': trainable, 'total': int(model.count_params())}


def measure(models, feature_column):
    """{config name: {'trainable', 'total'} or {'error': message}}"""
    columns = feature_columns(feature_column)
    result = {}
    for name, kwargs in MMOE_CONFIGS.items():
        result[name] = _counts(models.MMOE(columns, **kwargs))
    for name, kwargs in SHARED_BOTTOM_CONFIGS.items():
        result[name] = _counts(models.SharedBottom(columns, **kwargs))
    for name, kwargs in ERROR_CONFIGS.items():
        try:
            models.MMOE(columns, **kwargs)
            result[name] = {'error': None}
        except ValueError as error:
            result[name] = {'error': str(error)}
    return result


if __name__ == '__main__':
    from deepctr import feature_column as deepctr_feature_column
    from deepctr import models as deepctr_models
    with open(sys.argv[1], 'w') as out:
        json.dump(measure(deepctr_models, deepctr_feature_column), out)
