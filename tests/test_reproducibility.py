"""The Trainer trains the same weights from the same data and seed, whatever order its records come
in; another seed trains other weights. Through the real pipeline: test_other_layout.py."""

import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.config import PROJECT_DIR

import multi_worker_train

SCRIPT = '''
import dataclasses, sys
import numpy as np
import tensorflow as tf
import tf_keras as keras
import multi_worker_train as w
from trainer_module.build import build_model
from trainer_module.data import load_rows, read_split, training_batches

train_file, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = dataclasses.replace(
    w.SETTINGS, model=dataclasses.replace(w.SETTINGS.model, seed=seed, dnn_dropout=0.3),
    training=dataclasses.replace(w.SETTINGS.training, distribution='none'))
keras.utils.set_random_seed(seed)
tf.config.experimental.enable_op_determinism()
columns = w.columns()
rows, fingerprint = load_rows([train_file], w.SPEC)
model = build_model(settings, columns)
model.fit(training_batches(rows, settings, columns), steps_per_epoch=20, epochs=1, verbose=0)
assert fingerprint == read_split([train_file], w.SPEC, max_bytes=0).fingerprint  # streamed
np.savez(out, fingerprint=fingerprint, *model.get_weights())
'''


def _train_each(tmp_path, runs):
    """Trains each (train file, seed) in a process of its own, as the Trainer does, the processes
    side by side (each seeds and makes its ops deterministic itself); returns their
    (fingerprint, weights)."""
    outs = [tmp_path / f'run{index}.npz' for index in range(len(runs))]
    processes = [subprocess.Popen(
        [sys.executable, '-c', SCRIPT, str(train_file), str(seed), str(out)],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, 'PYTHONPATH': os.path.join(PROJECT_DIR, 'tests')})
        for (train_file, seed), out in zip(runs, outs)]
    results = []
    for process, out in zip(processes, outs):
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output.decode()[-3000:]
        result = np.load(out)
        results.append((str(result['fingerprint']),
                        [result[f'arr_{i}'] for i in range(len(result.files) - 1)]))
    return results


@pytest.mark.slow
def test_same_data_in_another_order_and_seed_train_the_same_weights(tmp_path):
    multi_worker_train.write_examples(str(tmp_path / 'a.tfrecord.gz'))
    multi_worker_train.write_examples(str(tmp_path / 'b.tfrecord.gz'), reverse=True)
    first, reordered, other_seed = _train_each(tmp_path, [
        (tmp_path / 'a.tfrecord.gz', 7), (tmp_path / 'b.tfrecord.gz', 7),
        (tmp_path / 'a.tfrecord.gz', 8)])
    assert first[0] == reordered[0] == other_seed[0]  # the same records
    for a, b in zip(first[1], reordered[1]):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first[1], other_seed[1]))
