"""The Trainer's MultiWorkerMirroredStrategy: two worker processes on loopback, one cluster."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from pipeline.config import PROJECT_DIR

import multi_worker_train

WORKERS = 2


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(('127.0.0.1', 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_in_step_and_agree_on_the_weights(tmp_path):
    train_file = str(tmp_path / 'train.tfrecord.gz')
    multi_worker_train.write_examples(train_file)
    cluster = {'worker': [f'127.0.0.1:{port}' for port in _free_ports(WORKERS)]}
    workers = []
    for index in range(WORKERS):
        tf_config = json.dumps({'cluster': cluster, 'task': {'type': 'worker', 'index': index}})
        workers.append(subprocess.Popen(
            [sys.executable, os.path.join('tests', 'multi_worker_train.py'), train_file,
             str(tmp_path / f'worker{index}.npz')],
            cwd=PROJECT_DIR,
            env={**os.environ, 'TF_CONFIG': tf_config, 'PYTHONPATH': PROJECT_DIR},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [worker.communicate(timeout=300)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    for worker, log in zip(workers, logs):
        assert worker.returncode == 0, log[-3000:]

    results = [np.load(tmp_path / f'worker{index}.npz') for index in range(WORKERS)]
    assert [bool(r['chief']) for r in results] == [True, False]
    assert all(int(r['replicas']) == WORKERS for r in results)
    assert all(bool(r['changed']) for r in results)
    names = [n for n in results[0].files if n.startswith('weight_')]
    for name in names:
        np.testing.assert_array_equal(results[0][name], results[1][name])
