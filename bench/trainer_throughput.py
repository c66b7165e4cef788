"""Training throughput: our Trainer's path against DeepCTR's `fit`, same data, same model, for
MMOE, PLE and ESMM.

    .venv/bin/python bench/trainer_throughput.py [--rounds 15] [--window 200] [--rows 204800]
        [--history 20] [--architectures mmoe,ple,esmm] [--no-bfloat16]

Ours: gzipped TFRecords of transformed examples, read by `trainer_module.data.make_dataset` and fed to
the model `trainer_module.build.build_model` compiles, exactly as the Trainer does. DeepCTR 0.9.4:
`deepctr.models.MMOE(...).fit(x, y, batch_size)` (or `PLE`, `ESMM`) on the same rows as in-memory
NumPy arrays, in the same environment (TensorFlow 2.16, Keras 2). Both: 8 sparse features
(vocabulary 1000, dimension 8), 5 dense, two binary tasks, Adam, batch 256, and the model of
`MODELS`: MMOE of 3 experts (256, 128), no towers; PLE of two levels of one specific expert per
task and one shared (256, 128), no towers; ESMM of DeepCTR's towers (256, 128, 64). With `--history N`,
also two behaviour histories of up to N ids (lengths drawn in [0, N]), mean-pooled, sharing the
tables of `cat_0` and `cat_1`: ours as the pipeline builds them (ids padded after, a length input,
`sequence_features` of the config), DeepCTR's as its users write them (`VarLenSparseFeat` of ids
padded with 0, its mask). DeepCTR runs twice: as
its users run it (TensorFlow's default threads), and with the intra-op thread setting our Trainer
uses (`training.intra_op_parallelism_threads`), to tell that setting's share of the gain from the
model's. Ours runs three times: with TensorFlow's op determinism, as the Trainer trains by default
(`training.deterministic`), without, to tell what reproducible training costs, and with
`training.precision: mixed_bfloat16` (determinism on), unless `--no-bfloat16`.

Each contender is a worker process in one long `fit`, which pauses after a warm-up and after every
`--window` batches until the bench lets it run the next window. The bench runs the contenders one
window each per round, in a rotating order, for `--rounds` rounds: on a shared machine the CPU a
process gets changes from one second to the next, and this way every round measures all of them
under nearly the same conditions. Every architecture of `--architectures` has its four
contenders, all in the same rotation. It prints each round, the medians, and per architecture the
ratios: of the medians, and the median of the rounds' ratios.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

# The workers import this checkout's modules, wherever the project is installed from.
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

SPARSE, DENSE, VOCABULARY, EMBEDDING_DIM = 8, 5, 1000, 8
BATCH = 256
WARM_UP_BATCHES = 50
# Per architecture (`model.architecture`), the model's arguments, ours and DeepCTR's alike.
MODELS = {
    'mmoe': dict(num_experts=3, expert_dnn_hidden_units=(256, 128), tower_dnn_hidden_units=()),
    'ple': dict(shared_expert_num=1, specific_expert_num=1, num_levels=2,
                expert_dnn_hidden_units=(256, 128), tower_dnn_hidden_units=()),
    'esmm': dict(tower_dnn_hidden_units=(256, 128, 64)),
}
READY, RATE = 'bench-worker-ready', 'bench-worker-rate '
GOAL_RATIO = 2.0  # our examples/s over DeepCTR's
BFLOAT16 = 'ours mixed_bfloat16'  # the contender trained with training.precision: mixed_bfloat16
BFLOAT16_GOAL_RATIO = 2.5  # its examples/s over DeepCTR's, where the CPU has bfloat16 instructions


HISTORIES = 2  # with --history: lists sharing the tables of cat_0 and cat_1


def make_rows(rows, seed=0, history=0):
    """{feature: [rows] values} (with `history`: each list's [rows, history] ids, 0 after its
    length, and its [rows] length)."""
    rng = np.random.default_rng(seed)
    data = {f'cat_{i}': rng.integers(0, VOCABULARY, rows) for i in range(SPARSE)}
    data.update({f'num_{i}': rng.normal(size=rows).astype('float32') for i in range(DENSE)})
    for i in range(HISTORIES if history else 0):
        lengths = rng.integers(0, history + 1, rows)
        ids = rng.integers(1, VOCABULARY, (rows, history))
        data[f'hist_{i}'] = np.where(np.arange(history) < lengths[:, None], ids, 0)
        data[f'hist_{i}_length'] = lengths
    logit = data['num_0'] + (data['cat_0'] % 7 - 3) / 3
    data['ctr'] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype('float32')
    data['ctcvr'] = data['ctr'] * (rng.random(rows) < 0.3)
    return data


def paced_windows(keras, window, windows):
    """A Keras callback that pauses training after the warm-up and after each `window` batches
    until a line comes on stdin, and prints each window's examples per second. Keras calls back
    once per execution, with the index of its last batch: both counts must be multiples of the
    model's steps per execution."""

    class PacedWindows(keras.callbacks.Callback):

        def __init__(self):
            super().__init__()
            self.started = None

        def on_train_batch_end(self, batch, logs=None):
            done = batch + 1 - WARM_UP_BATCHES
            if done < 0 or done % window:
                return
            if self.started is None:
                print(READY, flush=True)
            else:
                print(f'{RATE}{window * BATCH / (time.perf_counter() - self.started)}', flush=True)
            if done < window * windows:
                sys.stdin.readline()
                self.started = time.perf_counter()

    return PacedWindows()


def deepctr_worker(rows, window, windows, history, architecture):
    """DeepCTR's model of `architecture` (its function of our model function's name), `fit` over
    enough of the rows, repeated, for every window."""
    # pylint: disable=import-outside-toplevel
    import tf_keras as keras

    import trainer_module  # noqa: F401  (TF_USE_LEGACY_KERAS=1 before DeepCTR reads tf.keras)

    # isort: split
    from deepctr import models
    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat

    from trainer_module.architectures import ARCHITECTURES
    total = (WARM_UP_BATCHES + window * windows) * BATCH
    data = {name: np.resize(values, (total,) + values.shape[1:])
            for name, values in make_rows(rows, history=history).items()
            if not name.endswith('_length')}
    columns = ([SparseFeat(f'cat_{i}', VOCABULARY, embedding_dim=EMBEDDING_DIM) for i in range(SPARSE)]
               + [VarLenSparseFeat(SparseFeat(f'hist_{i}', VOCABULARY, embedding_dim=EMBEDDING_DIM,
                                              embedding_name=f'cat_{i}'), maxlen=history)
                  for i in range(HISTORIES if history else 0)]
               + [DenseFeat(f'num_{i}', 1) for i in range(DENSE)])
    model = getattr(models, ARCHITECTURES[architecture].model)(
        columns, task_types=('binary', 'binary'), task_names=('ctr', 'ctcvr'),
        **MODELS[architecture])
    model.compile('adam', loss=['binary_crossentropy', 'binary_crossentropy'])
    x = {name: data[name] for name in data if name not in ('ctr', 'ctcvr')}
    model.fit(x, [data['ctr'], data['ctcvr']], batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[paced_windows(keras, window, windows)])


def ours_worker(rows, window, windows, work_dir, deterministic, history, architecture,
                precision):
    """Our Trainer's path: the model fed by `make_dataset` from gzipped transformed TFRecords, with
    TensorFlow's op determinism on as the Trainer turns it on (`training.deterministic`), or off,
    in the `training.precision` given."""
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    import tf_keras as keras

    from trainer_module.build import build_model
    from trainer_module.data import make_dataset
    from trainer_module.features import feature_columns
    from trainer_module.runtime import set_op_threads

    config = ours_config(history, architecture, precision)
    set_op_threads(config.training.intra_op_parallelism_threads)
    keras.utils.set_random_seed(config.model.seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    data = make_rows(rows, history=history)
    path = os.path.join(work_dir, f'transformed-{os.getpid()}.tfrecord.gz')
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for i in range(rows):
            feature = {name: tf.train.Feature(
                int64_list=tf.train.Int64List(value=np.ravel(values[i])))
                       if values.dtype.kind == 'i' else
                       tf.train.Feature(float_list=tf.train.FloatList(value=[values[i]]))
                       for name, values in data.items()}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                         .SerializeToString())
    # As the Trainer sizes them from Transform's vocabularies: every table VOCABULARY ids.
    columns = feature_columns(config.trainer_settings(),
                              lambda name: VOCABULARY - config.num_oov_buckets)
    spec = {name: tf.io.FixedLenFeature(values.shape[1:],
                                        tf.int64 if values.dtype.kind == 'i' else tf.float32)
            for name, values in data.items()}
    dataset = make_dataset([path], spec, config.trainer_settings(), columns, True)
    model = build_model(config.trainer_settings(), columns)
    model.fit(dataset, steps_per_epoch=WARM_UP_BATCHES + window * windows, epochs=1, verbose=0,
              callbacks=[paced_windows(keras, window, windows)])


def ours_config(history=0, architecture='mmoe', precision='float32'):
    """The pipeline's config of the bench's data and the model of `architecture`, trained in
    `precision`."""
    from pipeline.config import PipelineConfig  # pylint: disable=import-outside-toplevel
    sequences = [f'{{name: hist_{i}, embedding_name: cat_{i}, max_length: {history}}}'
                 for i in range(HISTORIES if history else 0)]
    return PipelineConfig().with_overrides([
        'sparse_features=[' + ', '.join(f'{{name: cat_{i}, embedding_dim: {EMBEDDING_DIM}}}'
                                        for i in range(SPARSE)) + ']',
        f'sequence_features=[{", ".join(sequences)}]',
        f'dense_features={[f"num_{i}" for i in range(DENSE)]}',
        'tasks=[{name: ctr, label: ctr}, {name: ctcvr, label: ctcvr}]', 'slice_features=[]',
        'drift=[]', 'evaluation.group_by=null',
        f'training.batch_size={BATCH}', f'training.precision={precision}',
        f'model.architecture={architecture}',
        *(f'model.{name}={list(value) if isinstance(value, tuple) else value}'
          for name, value in MODELS[architecture].items())])


class Worker:
    """A worker process, started and run to its first pause."""

    def __init__(self, name, command, env, log_path):
        self.name = name
        self.log_path = log_path
        with open(log_path, 'w') as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', CUDA_VISIBLE_DEVICES='', **env))
        self._read(READY)

    def _read(self, prefix):
        for line in self.process.stdout:
            if line.startswith(prefix):
                return line[len(prefix):]
        with open(self.log_path) as log:
            sys.exit(f'{self.name} worker stopped (exit {self.process.wait()}):\n'
                     + ''.join(log.readlines()[-20:]))

    def run_window(self):
        self.process.stdin.write('go\n')
        self.process.stdin.flush()
        return float(self._read(RATE))


def _workers(architecture, script, work_dir, worker_args, threads, bfloat16):
    """The contenders of `architecture`, named after it, started one after the other: a paused
    worker takes no CPU from the next one's start."""
    args = [*worker_args, '--architecture', architecture]

    def log(name):
        return os.path.join(work_dir, f'{architecture}-{name}.log')

    return [
        Worker(f'{architecture} ours', [sys.executable, script, '--worker', 'ours', '--work-dir',
                                        work_dir, *args], {}, log('ours')),
        Worker(f'{architecture} ours without op determinism',
               [sys.executable, script, '--worker', 'ours-nondeterministic', '--work-dir',
                work_dir, *args], {}, log('ours-nondet')),
        Worker(f'{architecture} DeepCTR 0.9.4',
               [sys.executable, script, '--worker', 'deepctr', *args], {}, log('deepctr')),
        Worker(f'{architecture} DeepCTR 0.9.4 same threads',
               [sys.executable, script, '--worker', 'deepctr', *args],
               {'TF_NUM_INTRAOP_THREADS': str(threads)}, log('deepctr-same-threads')),
    ] + ([Worker(f'{architecture} {BFLOAT16}',
                 [sys.executable, script, '--worker', 'ours', '--precision', 'mixed_bfloat16',
                  '--work-dir', work_dir, *args], {}, log('ours-bfloat16'))] if bfloat16 else [])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--window', type=int, default=200, help='batches per window')
    parser.add_argument('--rows', type=int, default=BATCH * 800, help='rows of data, repeated')
    parser.add_argument('--history', type=int, default=0,
                        help='two mean-pooled histories of up to this many ids (0: none)')
    parser.add_argument('--architectures', default=','.join(MODELS),
                        help=f'the models to measure, comma-separated, of {", ".join(MODELS)}')
    parser.add_argument('--no-bfloat16', dest='bfloat16', action='store_false',
                        help='leave out our model trained with training.precision: mixed_bfloat16')
    parser.add_argument('--worker', choices=['ours', 'ours-nondeterministic', 'deepctr'],
                        help=argparse.SUPPRESS)
    parser.add_argument('--precision', default='float32', help=argparse.SUPPRESS)
    parser.add_argument('--architecture', choices=list(MODELS), default='mmoe',
                        help=argparse.SUPPRESS)
    parser.add_argument('--work-dir', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == 'deepctr':
        deepctr_worker(args.rows, args.window, args.rounds, args.history, args.architecture)
        return
    if args.worker in ('ours', 'ours-nondeterministic'):
        ours_worker(args.rows, args.window, args.rounds, args.work_dir,
                    deterministic=args.worker == 'ours', history=args.history,
                    architecture=args.architecture, precision=args.precision)
        return
    architectures = args.architectures.split(',')
    unknown = sorted(set(architectures) - set(MODELS))
    if unknown:
        sys.exit(f'--architectures: {unknown} are not of {list(MODELS)}')
    training = ours_config().training
    if args.window % training.steps_per_execution or WARM_UP_BATCHES % training.steps_per_execution:
        sys.exit(f'--window must be a multiple of training.steps_per_execution '
                 f'({training.steps_per_execution})')
    threads = training.intra_op_parallelism_threads
    worker_args = ['--rows', str(args.rows), '--window', str(args.window), '--rounds',
                   str(args.rounds), '--history', str(args.history)]
    with tempfile.TemporaryDirectory() as work_dir:
        script = os.path.abspath(__file__)
        workers = [worker for architecture in architectures
                   for worker in _workers(architecture, script, work_dir, worker_args, threads,
                                          args.bfloat16)]
        measured = {worker.name: [] for worker in workers}
        for i in range(args.rounds):
            for worker in workers[i % len(workers):] + workers[:i % len(workers)]:
                measured[worker.name].append(worker.run_window())
            print(f'round {i + 1}: ' + ', '.join(f'{name} {rates[-1]:,.0f}'
                                                 for name, rates in measured.items())
                  + ' examples/s', flush=True)
        for worker in workers:
            worker.process.wait()
    medians = {name: statistics.median(rates) for name, rates in measured.items()}
    print(f'median examples/s ({os.cpu_count()} CPUs, windows of {args.window} batches of {BATCH}, '
          f'histories of up to {args.history} ids, '
          f'our intra-op threads {threads or "one per core"}): '
          + ', '.join(f'{name} {rate:,.0f}' for name, rate in medians.items()))
    for architecture in architectures:
        ours = f'{architecture} ours'
        bfloat16 = f'{architecture} {BFLOAT16}'
        deepctr = [name for name in measured if name.startswith(f'{architecture} DeepCTR')]
        for mine, goal in ((ours, GOAL_RATIO), (bfloat16, BFLOAT16_GOAL_RATIO)):
            if mine not in measured:
                continue
            for name in measured:
                if name.startswith(f'{architecture} ') and name != mine:
                    per_round = statistics.median(
                        o / d for o, d in zip(measured[mine], measured[name]))
                    print(f'ratio {mine} / {name}: {medians[mine] / medians[name]:.2f} of the '
                          f'medians, {per_round:.2f} the median of the rounds')
            slowest = min(medians[mine] / medians[name] for name in deepctr)
            print(f'{mine} goal: at least {goal} times every DeepCTR contender (of the medians): '
                  + ('met' if slowest >= goal else f'not met ({slowest:.2f})'))


if __name__ == '__main__':
    main()
