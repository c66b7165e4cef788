"""Training throughput: our Trainer's path against DeepCTR's `MMOE.fit`, same data, same model.

    .venv/bin/python bench/trainer_throughput.py [--rows 204800] [--rounds 5]

Ours: gzipped TFRecords of transformed examples, read by `trainer_module.run.make_dataset` and fed to
the model `trainer_module.run.build_model` compiles, exactly as the Trainer does. DeepCTR 0.9.3:
`deepctr.models.MMOE(...).fit(x, y, batch_size)` on the same rows as in-memory NumPy arrays, in its own
venv (`make deepctr-venv`; TensorFlow 2.10). Both: 8 sparse features (vocabulary 1000, dimension 8),
5 dense, 3 experts (256, 128), no towers, two binary tasks, Adam, batch 256. DeepCTR runs twice a
round: as its users run it (TensorFlow's default threads), and with the intra-op thread setting our
Trainer uses (`training.intra_op_parallelism_threads`), to tell that setting's share of the gain from
the model's. They alternate for `--rounds` rounds in one run; each round times one pass over the rows
after a warm-up, and the script prints each round, the medians and the ratios.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

SPARSE, DENSE, VOCABULARY, EMBEDDING_DIM = 8, 5, 1000, 8
BATCH = 256
MODEL = dict(num_experts=3, expert_dnn_hidden_units=(256, 128), tower_dnn_hidden_units=())
DEEPCTR_PYTHON = os.path.join(PROJECT_DIR, '.venv-deepctr', 'bin', 'python')


def make_rows(rows, seed=0):
    rng = np.random.default_rng(seed)
    data = {f'cat_{i}': rng.integers(0, VOCABULARY, rows) for i in range(SPARSE)}
    data.update({f'num_{i}': rng.normal(size=rows).astype('float32') for i in range(DENSE)})
    logit = data['num_0'] + (data['cat_0'] % 7 - 3) / 3
    data['ctr'] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype('float32')
    data['ctcvr'] = data['ctr'] * (rng.random(rows) < 0.3)
    return data


def _deepctr_round(rows):
    """In the DeepCTR venv: examples per second of one MMOE.fit epoch after a warm-up."""
    from deepctr.feature_column import DenseFeat, SparseFeat  # pylint: disable=import-outside-toplevel
    from deepctr.models import MMOE  # pylint: disable=import-outside-toplevel
    data = make_rows(rows)
    columns = ([SparseFeat(f'cat_{i}', VOCABULARY, embedding_dim=EMBEDDING_DIM) for i in range(SPARSE)]
               + [DenseFeat(f'num_{i}', 1) for i in range(DENSE)])
    model = MMOE(columns, task_types=('binary', 'binary'), task_names=('ctr', 'ctcvr'), **MODEL)
    model.compile('adam', loss=['binary_crossentropy', 'binary_crossentropy'])
    x = {name: data[name] for name in data if name not in ('ctr', 'ctcvr')}
    y = [data['ctr'], data['ctcvr']]
    warm = {name: values[:BATCH * 20] for name, values in x.items()}
    model.fit(warm, [v[:BATCH * 20] for v in y], batch_size=BATCH, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return rows / (time.perf_counter() - started)


class Ours:
    """Our Trainer's path, built once; each round is one timed pass over the rows."""

    def __init__(self, rows, work_dir):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        import trainer_module  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        from pipeline.config import PipelineConfig  # pylint: disable=import-outside-toplevel
        from trainer_module.feature_column import DenseFeat, SparseFeat  # pylint: disable=import-outside-toplevel
        from trainer_module.run import build_model, make_dataset, set_op_threads  # pylint: disable=import-outside-toplevel

        self.rows = rows
        data = make_rows(rows)
        path = os.path.join(work_dir, 'transformed.tfrecord.gz')
        with tf.io.TFRecordWriter(path, options='GZIP') as writer:
            for i in range(rows):
                feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=[values[i]]))
                           if name.startswith('cat_') else
                           tf.train.Feature(float_list=tf.train.FloatList(value=[values[i]]))
                           for name, values in data.items()}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                             .SerializeToString())
        self.config = PipelineConfig().with_overrides([
            f'sparse_features={[f"cat_{i}" for i in range(SPARSE)]}',
            f'dense_features={[f"num_{i}" for i in range(DENSE)]}',
            'tasks=[{name: ctr, label: ctr}, {name: ctcvr, label: ctcvr}]', 'slice_features=[]',
            'drift=[]',
            f'training.batch_size={BATCH}',
            f'model.expert_dnn_hidden_units={list(MODEL["expert_dnn_hidden_units"])}',
            'model.tower_dnn_hidden_units=[]'])
        set_op_threads(self.config)
        self.columns = ([SparseFeat(f'cat_{i}', VOCABULARY, embedding_dim=EMBEDDING_DIM)
                         for i in range(SPARSE)] + [DenseFeat(f'num_{i}') for i in range(DENSE)])
        spec = {name: tf.io.FixedLenFeature([], tf.int64 if name.startswith('cat_') else tf.float32)
                for name in data}
        self.dataset = make_dataset([path], spec, self.config, self.columns, True)
        self.model = build_model(self.config, self.columns)
        self.model.fit(self.dataset, steps_per_epoch=20, epochs=1, verbose=0)

    def round(self):
        steps = self.rows // BATCH
        started = time.perf_counter()
        self.model.fit(self.dataset, steps_per_epoch=steps, epochs=1, verbose=0)
        return steps * BATCH / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', type=int, default=BATCH * 800)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--deepctr-round', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.deepctr_round:
        print(json.dumps(_deepctr_round(args.rows)))
        return
    if not os.path.exists(DEEPCTR_PYTHON):
        sys.exit('DeepCTR venv missing: run make deepctr-venv')
    with tempfile.TemporaryDirectory() as work_dir:
        ours = Ours(args.rows, work_dir)
        threads = ours.config.training.intra_op_parallelism_threads
        # DeepCTR as its users run it, and with the thread setting our Trainer uses.
        deepctr_envs = {'DeepCTR': {},
                        'DeepCTR same threads': {'TF_NUM_INTRAOP_THREADS': str(threads)}}
        measured = {name: [] for name in ['ours', *deepctr_envs]}
        for i in range(args.rounds):
            measured['ours'].append(ours.round())
            for name, env in deepctr_envs.items():
                process = subprocess.run(
                    [DEEPCTR_PYTHON, os.path.abspath(__file__), '--deepctr-round', '--rows',
                     str(args.rows)], capture_output=True, text=True, check=True,
                    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='', **env))
                measured[name].append(json.loads(process.stdout.strip().splitlines()[-1]))
            print(f'round {i + 1}: ' + ', '.join(f'{name} {rates[-1]:,.0f}'
                                                 for name, rates in measured.items())
                  + ' examples/s', flush=True)
    medians = {name: statistics.median(rates) for name, rates in measured.items()}
    print(f'median examples/s ({os.cpu_count()} CPUs, {args.rows} rows, batch {BATCH}, our '
          f'intra-op threads {threads or "one per core"}): '
          + ', '.join(f'{name} {rate:,.0f}' for name, rate in medians.items()))
    for name in deepctr_envs:
        print(f'ratio ours / {name}: {medians["ours"] / medians[name]:.2f}')


if __name__ == '__main__':
    main()
