"""What decided the model, written into the SavedModel (`PROVENANCE_FILE`), so that it travels with
every pushed copy: the seed, the Trainer's settings, the steps, the tasks' learned log-variances,
the model it started from (`warm_start`), the data's fingerprints, the package versions and the
machine's architecture.
"""

import importlib.metadata
import json
import os
import platform
from typing import Any, Dict, Optional

import tensorflow as tf

from trainer_module.settings import PROVENANCE_FILE, TrainerSettings

# The packages whose versions decide what a run computes.
PACKAGES = ('tensorflow', 'tf-keras', 'tensorflow-transform', 'tensorflow-model-analysis', 'tfx',
            'apache-beam', 'numpy', 'mmoe-tfx-pipeline')


def write_provenance(serving_model_dir: str, settings: TrainerSettings,
                     fingerprints: Dict[str, str], steps: Dict[str, int],
                     log_variances: Dict[str, float],
                     warm_start: Optional[Dict[str, Any]] = None):
    """Writes into the SavedModel at `serving_model_dir` (PROVENANCE_FILE) what decided the model:
    the seed, the Trainer's settings, the steps planned and run and the step whose weights it kept
    (`TrainingResult.steps`), the tasks' learned log-variances (uncertainty loss weighting; else
    empty), the report of its warm start (`warm_start.warm_start`: the base model it started
    from, or why it started cold; None: {}), the fingerprints of the training and validation
    splits ({'train', 'validation'}: `Split.fingerprint`), the package versions and the
    machine's architecture."""
    provenance = {
        'seed': settings.model.seed,
        'steps': steps,
        'task_log_variance': log_variances,
        'warm_start': warm_start or {},
        'settings': settings.to_dict(),
        'data': fingerprints,
        'versions': {'python': platform.python_version(), 'machine': platform.machine(),
                     **{package: importlib.metadata.version(package) for package in PACKAGES}},
    }
    path = os.path.join(serving_model_dir, PROVENANCE_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, 'w') as f:
        f.write(json.dumps(provenance, indent=2, sort_keys=True))
