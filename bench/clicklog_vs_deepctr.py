"""Multi-task models on a click log with behaviour histories: each contender's AUC against Bayes.

    .venv/bin/python bench/clicklog_vs_deepctr.py [--rows 200000] [--eval-rows 50000] [--rounds 1]

The data: `pipeline.datasets.clicklog`, --rows training rows and --eval-rows held-out rows of one
log (its rows are in a random order, so the split is a random one). The click probability there
rises with how much of the user's history matches the target item, so how a model reads
`hist_item_ids` and `hist_categories` decides how close it comes to the Bayes AUC, which the bench
prints beside each task's AUC on the eval rows: the expected one, and that of the true
probabilities on these very rows (the fair bound for one sample).

The contenders:
- DeepCTR 0.9.4's `MMOE` written as DeepCTR's users write it (its multi-value movielens example):
  label-encoded ids, the histories as `VarLenSparseFeat(..., combiner='mean')` sharing the target's
  embeddings, padded with `pad_sequences`, the inputs named by `get_feature_names`, Keras' `fit`
  with early stopping on a validation split;
- the pipeline (`local_runner.py`, every component, from the CSVs), with the same MMOE arguments and
  embedding width, the numbers scaled as DeepCTR's contender scales them (log1p, then min-max:
  `scaling: min_max`), the histories as `sequence_features` sharing the targets' tables: once with
  `mean` pooling, as DeepCTR's; once with the `attention` combiner on the category history
  (queried by the target's category; the item history stays mean-pooled); and once with `mean`
  pooling and each history's `match` with the target's item or category (how often and how
  recently it occurs in the history, docs/features.md). Its train rows are split
  into train and validation by hash as a run splits them, the eval rows are its eval split
  (`eval_csv_pattern`), and its AUCs are the Evaluators'. Its examples/s is the steps it ran times
  the batch over the Trainer's wall time, its evaluations and export included.

Each contender is a function of the train and eval
frames and a seed, in CONTENDERS; each round trains every contender once, in a rotating order (on a
shared machine the CPU a process gets changes from one minute to the next), with the round's seed.
Throughput is training examples per second of the training batches (validation excluded).
"""

import argparse
import functools
import os
import statistics
import sys
import time

import numpy as np

# The checkout's modules, wherever the project is installed from.
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT_DIR)

import trainer_module  # noqa: E402,F401  (TF_USE_LEGACY_KERAS=1 before DeepCTR reads tf.keras)
from bench.pipeline_scaling import PeakMemory, clicklog_settings  # noqa: E402
from pipeline.datasets import clicklog  # noqa: E402
from pipeline.datasets.ecommerce import sample_auc  # noqa: E402

BATCH = 256
EMBEDDING_DIM = 8
VALIDATION_SPLIT = 0.1
PATIENCE = 2


def training_clock(keras):
    """A Keras callback that adds up the time of each epoch's training batches, from the epoch's
    start to its validation's start (or its end, without validation)."""

    class TrainingClock(keras.callbacks.Callback):

        def __init__(self):
            super().__init__()
            self.seconds = 0.0
            self.started = None

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def _stop(self):
            if self.started is not None:
                self.seconds += time.perf_counter() - self.started
                self.started = None

        def on_test_begin(self, logs=None):
            self._stop()

        def on_epoch_end(self, epoch, logs=None):
            self._stop()

    return TrainingClock()


def deepctr_mmoe(train, eval_rows, seed, epochs):
    """DeepCTR 0.9.4's MMOE with mean-pooled histories; returns ({task: eval AUC}, examples/s,
    epochs run)."""
    # pylint: disable=import-outside-toplevel
    import pandas as pd
    import tf_keras as keras
    from deepctr.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat, get_feature_names
    from deepctr.models import MMOE
    from sklearn.preprocessing import LabelEncoder, MinMaxScaler
    from tf_keras.preprocessing.sequence import pad_sequences

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    data = pd.concat([train, eval_rows], ignore_index=True)
    sparse_features = list(clicklog.SPARSE_COLUMNS)
    dense_features = list(clicklog.DENSE_COLUMNS)

    # 1. Ids: label-encoded where a column has no history; where it has, one index for the column
    # and its history (DeepCTR's `key2index`), so a history entry and a target share an id, 0
    # being the padding.
    sequences, vocabulary = {}, {}
    for feature in sparse_features:
        histories = [name for name, shared in clicklog.SEQUENCE_COLUMNS.items() if shared == feature]
        if not histories:
            data[feature] = LabelEncoder().fit_transform(data[feature])
            continue
        key2index = {}
        data[feature] = [key2index.setdefault(key, len(key2index) + 1) for key in data[feature]]
        for name in histories:
            lists = [[key2index.setdefault(key, len(key2index) + 1)
                      for key in keys.split(clicklog.SEPARATOR)] if keys else []
                     for keys in data[name].fillna('')]
            sequences[name] = (pad_sequences(lists, maxlen=clicklog.MAX_HISTORY, padding='post'),
                               feature)
        vocabulary[feature] = len(key2index) + 1
    data[dense_features] = MinMaxScaler().fit_transform(np.log1p(data[dense_features]))

    # 2. Feature columns: the histories mean-pooled over the target's embeddings.
    feature_columns = ([SparseFeat(feature, vocabulary.get(feature, data[feature].max() + 1),
                                   embedding_dim=EMBEDDING_DIM) for feature in sparse_features]
                       + [VarLenSparseFeat(SparseFeat(name, vocabulary[shared],
                                                      embedding_dim=EMBEDDING_DIM,
                                                      embedding_name=shared),
                                           maxlen=clicklog.MAX_HISTORY, combiner='mean')
                          for name, (_, shared) in sequences.items()]
                       + [DenseFeat(feature, 1) for feature in dense_features])
    feature_names = get_feature_names(feature_columns)
    inputs = {name: sequences[name][0] if name in sequences else data[name].to_numpy()
              for name in feature_names}
    train_input = {name: values[:len(train)] for name, values in inputs.items()}
    eval_input = {name: values[len(train):] for name, values in inputs.items()}
    labels = list(clicklog.TASK_LABELS.values())

    # 3. Train with early stopping on a validation split, then predict the eval rows.
    model = MMOE(feature_columns, task_types=['binary'] * len(labels),
                 task_names=list(clicklog.TASK_LABELS), seed=seed)
    model.compile('adam', loss=['binary_crossentropy'] * len(labels))
    clock = training_clock(keras)
    history = model.fit(train_input, [train[label].to_numpy() for label in labels],
                        batch_size=BATCH, epochs=epochs, verbose=0, validation_split=VALIDATION_SPLIT,
                        callbacks=[keras.callbacks.EarlyStopping(patience=PATIENCE,
                                                                 restore_best_weights=True), clock])
    predictions = model.predict(eval_input, batch_size=4096, verbose=0)
    aucs = {task: sample_auc(predicted[:, 0], eval_rows[label].to_numpy())
            for (task, label), predicted in zip(clicklog.TASK_LABELS.items(), predictions)}
    epochs_run = len(history.history['loss'])
    trained = int(len(train) * (1 - VALIDATION_SPLIT)) * epochs_run
    return aucs, trained / clock.seconds, epochs_run


def pipeline_run(train, eval_rows, seed, epochs, attention=False, match=False, sets=()):
    """The whole pipeline on the rows, with the `--set` values `sets` more; returns ({task: eval
    AUC}, Trainer examples/s, passes over the training split)."""
    # pylint: disable=import-outside-toplevel
    import json
    import subprocess
    import tempfile

    from pipeline import draft
    with tempfile.TemporaryDirectory() as root:
        for split, rows in (('train', train), ('eval', eval_rows)):
            os.makedirs(os.path.join(root, 'data', split))
            rows.to_csv(os.path.join(root, 'data', split, clicklog.CSV_NAME), index=False)
        draft.draft(os.path.join(root, 'data', 'train', clicklog.CSV_NAME),
                    os.path.join(root, 'project'))
        settings = [
            f'data={os.path.join(root, "data")}', 'csv_pattern=train/*.csv',
            'eval_csv_pattern=eval/*.csv',
            *clicklog_settings(clicklog.MAX_HISTORY, EMBEDDING_DIM, attention, match,
                               scaling='min_max'),
            f'model.seed={seed}', f'training.epochs={epochs}', f'training.batch_size={BATCH}',
            *sets]
        output = os.path.join(root, 'outputs')
        with open(os.path.join(root, 'run.log'), 'w') as log:
            run = subprocess.Popen(
                [sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), '--config',
                 os.path.join(root, 'project', 'config.yaml'), '--output', output,
                 '--warn-on-anomalies', *(arg for setting in settings for arg in ('--set', setting))],
                stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_DIR)
            memory = PeakMemory(run.pid)
            if run.wait():
                with open(log.name) as f:
                    sys.exit(f'the pipeline failed:\n{f.read()[-3000:]}')
            peak = memory.stop()
        with open(os.path.join(output, 'run_summary.json')) as f:
            summary = json.load(f)
    rows = len(train) + len(eval_rows)
    seconds = {node: summary['nodes'][node]['seconds']
               for node in ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Trainer')}
    print('    the pipeline: ' + ', '.join(f'{node} {value:.0f} s' for node, value in seconds.items())
          + f'; Transform {len(train) / seconds["Transform"]:,.0f} training rows/s (it reads the '
          f'train and validation splits); peak memory {peak / 2 ** 30:.1f} GiB; '
          f'{rows:,} rows in all', flush=True)
    aucs = {task: summary['tasks'][task]['metrics']['auc'] for task in clicklog.TASK_LABELS}
    steps = json.loads(summary['trained_model']['properties']['trainer_settings'])['steps']
    rate = steps['run'] * BATCH / summary['nodes']['Trainer']['seconds']
    train_rows = len(train) * 8 / 9  # split_shares' train and validation shares, 8 and 1
    return aucs, rate, round(steps['run'] * BATCH / train_rows, 1)


# Name -> function(train frame, eval frame, seed, max epochs) -> ({task: AUC}, examples/s, epochs).
CONTENDERS = {
    'DeepCTR 0.9.4 MMOE, mean-pooled histories': deepctr_mmoe,
    'the pipeline, mean-pooled histories': functools.partial(pipeline_run, attention=False),
    'the pipeline, attention over the category history': functools.partial(pipeline_run,
                                                                         attention=True),
    'the pipeline, mean-pooled histories and their matches': functools.partial(pipeline_run,
                                                                              match=True),
    'the pipeline, mean-pooled histories, early stopping on the mean validation AUC':
        functools.partial(pipeline_run, sets=('training.early_stopping_metric=auc',)),
}


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='contenders (--contenders takes their numbers):\n' + '\n'.join(
            f'  {i}: {name}' for i, name in enumerate(CONTENDERS)))
    parser.add_argument('--rows', type=int, default=200000, help='training rows')
    parser.add_argument('--eval-rows', type=int, default=50000)
    parser.add_argument('--seed', type=int, default=7, help="the data's seed")
    parser.add_argument('--rounds', type=int, default=1, help='trainings of each contender')
    parser.add_argument('--epochs', type=int, default=10, help='at most, with early stopping')
    parser.add_argument('--contenders', default=None,
                        help='the contenders to run, by number, e.g. 0,1,4 (default: all)')
    args = parser.parse_args()
    names = list(CONTENDERS)
    if args.contenders:
        try:
            names = [names[int(i)] for i in args.contenders.split(',')]
        except (ValueError, IndexError):
            parser.error(f'--contenders: numbers from 0 to {len(names) - 1}, got {args.contenders}')

    started = time.perf_counter()
    frame, probabilities = clicklog.generate(args.rows + args.eval_rows, seed=args.seed)
    train, eval_rows = frame.iloc[:args.rows], frame.iloc[args.rows:].reset_index(drop=True)
    bayes = clicklog.bayes_auc(eval_rows, {task: p[args.rows:] for task, p in probabilities.items()})
    print(f'{args.rows:,} train and {args.eval_rows:,} eval rows generated in '
          f'{time.perf_counter() - started:.1f} s; Bayes AUC on the eval rows: '
          + ', '.join(f"{task} {auc['expected']:.4f} (on these rows {auc['on_sample']:.4f})"
                      for task, auc in bayes.items()), flush=True)

    measured = {name: [] for name in names}
    for i in range(args.rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            started = time.perf_counter()
            aucs, rate, epochs = CONTENDERS[name](train, eval_rows, seed=i, epochs=args.epochs)
            measured[name].append((aucs, rate))
            print(f'round {i + 1}, {name}: '
                  + ', '.join(f'{task} AUC {auc:.4f}' for task, auc in aucs.items())
                  + f'; {rate:,.0f} examples/s, {epochs} epochs, '
                  f'{time.perf_counter() - started:.0f} s in all', flush=True)

    print(f'\nmedians over {args.rounds} round(s), {os.cpu_count()} CPUs, batch {BATCH}:')
    tasks = list(clicklog.TASK_LABELS)
    print('| contender | ' + ' | '.join(f'{task} AUC (Bayes - AUC)' for task in tasks)
          + ' | examples/s |')
    print('|---|' + '---:|' * (len(tasks) + 1))
    print('| Bayes (on these rows) | '
          + ' | '.join(f"{bayes[task]['on_sample']:.4f}" for task in tasks) + ' | |')
    for name, runs in measured.items():
        aucs = {task: statistics.median(run[0][task] for run in runs) for task in tasks}
        print(f'| {name} | '
              + ' | '.join(f"{aucs[task]:.4f} ({bayes[task]['on_sample'] - aucs[task]:.4f})"
                           for task in tasks)
              + f' | {statistics.median(run[1] for run in runs):,.0f} |')
    print(f'\neach round (seeds 0 to {args.rounds - 1}) and the mean:')
    print('| contender | ' + ' | '.join(f'{task} AUC, each seed | {task}, mean' for task in tasks)
          + ' |')
    print('|---|' + '---|---:|' * len(tasks))
    for name, runs in measured.items():
        print(f'| {name} | ' + ' | '.join(
            ' / '.join(f'{run[0][task]:.4f}' for run in runs)
            + f' | {statistics.mean(run[0][task] for run in runs):.4f}' for task in tasks) + ' |')


if __name__ == '__main__':
    main()
