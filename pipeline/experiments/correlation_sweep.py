"""The MMoE paper's task-correlation experiment on this project's MMOE, OMoE, SharedBottom and PLE.

    python -m pipeline.experiments.correlation_sweep --quick              # a few minutes on 2 cores
    python -m pipeline.experiments.correlation_sweep                      # the full sweep
    python -m pipeline.experiments.correlation_sweep --correlations 0,0.5,0.9,1 --repeats 20

For each label correlation p (the paper's knob, `pipeline.datasets.synthetic`) and each repeat (a
new data set and new initial weights), it trains the three models on the same rows with Adam on
the sum of the two tasks' mean squared errors, and records the eval loss (the mean of the two
tasks' MSE on held-out rows) every `--eval-every` steps. As in the paper, the mixtures have 8
single-layer experts of 16 units and a tower of 8 units per task; PLE (not in the paper) has as
many experts, in one extraction level: 2 of each task's own and 4 shared; the Shared-Bottom's
single bottom layer is as wide as makes its parameter count closest to MMoE's.

Writes under --out: `curves.csv` (every recorded eval loss), `final_losses.csv` (the last one per
model, p and repeat, with the labels' Pearson correlation) and `correlation_sweep.png` (eval loss
against steps, a panel per p, mean and one standard deviation over the repeats); prints the mean
final losses as a table and whether MMoE has the lowest at the smallest p.
"""

import argparse
import csv
import os
import time
from typing import Any, Dict, List

import numpy as np
import tensorflow as tf
import tf_keras as keras

from pipeline.datasets import synthetic
from trainer_module.feature_column import DenseFeat
from trainer_module.models import MMOE, PLE, OMoE, SharedBottom

MODELS = ('MMoE', 'OMoE', 'Shared-Bottom', 'PLE')
EXPERTS, EXPERT_UNITS, TOWER_UNITS = 8, 16, 8
# PLE's EXPERTS: each task's own and the shared ones, in one level.
PLE_SPECIFIC, PLE_SHARED = 2, 4
# Enough rows that no model overfits within the steps: on 5,000 rows the mixtures' eval loss rises
# after a few hundred steps, which measures overfitting, not task relatedness.
QUICK = dict(correlations=(0.5, 0.9, 1.0), repeats=3, steps=3000, rows=100_000, eval_every=300)
FULL = dict(correlations=(0.5, 0.9, 1.0), repeats=5, steps=5000, rows=300_000, eval_every=250)
EVAL_ROWS = 10_000
BATCH = 128
LEARNING_RATE = 1e-3
SHUFFLE_BUFFER = 10_000  # the rows are i.i.d. already; a full-size buffer only costs its refill


def build(model_name: str, dim: int, seed: int, bottom_units: int = 0) -> keras.Model:
    columns = [DenseFeat('x', dim)]
    common = dict(tower_dnn_hidden_units=(TOWER_UNITS,), seed=seed, l2_reg_embedding=0,
                  task_types=('regression', 'regression'), task_names=synthetic.LABELS)
    if model_name == 'Shared-Bottom':
        return SharedBottom(columns, bottom_dnn_hidden_units=(bottom_units,), **common)
    if model_name == 'PLE':
        return PLE(columns, shared_expert_num=PLE_SHARED, specific_expert_num=PLE_SPECIFIC,
                   num_levels=1, expert_dnn_hidden_units=(EXPERT_UNITS,), **common)
    mixture = MMOE if model_name == 'MMoE' else OMoE
    return mixture(columns, num_experts=EXPERTS, expert_dnn_hidden_units=(EXPERT_UNITS,),
                   **common)


def matched_bottom_units(dim: int) -> int:
    """The Shared-Bottom width whose parameter count is closest to MMoE's."""
    target = build('MMoE', dim, 0).count_params()
    per_unit = dim + 1 + 2 * TOWER_UNITS  # a bottom unit's weights, bias and tower weights
    fixed = build('Shared-Bottom', dim, 0, bottom_units=1).count_params() - per_unit
    return max(1, round((target - fixed) / per_unit))


def train_curve(model_name: str, x, y, x_eval, y_eval, steps: int, eval_every: int, seed: int,
                bottom_units: int) -> List[float]:
    """The eval loss (mean of the tasks' MSE) after every `eval_every` steps of Adam on the sum of
    the tasks' MSE."""
    keras.utils.set_random_seed(seed)
    model = build(model_name, x.shape[1], seed, bottom_units)
    optimizer = keras.optimizers.Adam(LEARNING_RATE)
    batches = iter(tf.data.Dataset.from_tensor_slices((x, y))
                   .repeat().shuffle(SHUFFLE_BUFFER, seed=seed).batch(BATCH))
    x_eval, y_eval = tf.constant(x_eval), tf.constant(y_eval)

    def task_losses(labels, predictions):
        return [tf.reduce_mean(tf.square(labels[:, k:k + 1] - prediction))
                for k, prediction in enumerate(predictions)]

    # A hand-written loop traced once, running `eval_every` steps per call: Keras' fit costs
    # several times the training itself on models this small.
    @tf.function
    def train_then_evaluate():
        for _ in tf.range(eval_every):
            features, labels = next(batches)
            with tf.GradientTape() as tape:
                loss = tf.add_n(task_losses(labels, model({'x': features}, training=True)))
            variables = model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return tf.reduce_mean(task_losses(y_eval, model({'x': x_eval}, training=False)))

    return [float(train_then_evaluate()) for _ in range(steps // eval_every)]


def run_sweep(correlations, repeats: int, steps: int, rows: int, eval_every: int, dim: int = 100
              ) -> Dict:
    """{'curves': [(model, p, repeat, step, loss)], 'final': [(model, p, repeat, pearson, loss)]}"""
    bottom_units = matched_bottom_units(dim)
    params = {name: build(name, dim, 0, bottom_units).count_params() for name in MODELS}
    print('parameters: ' + ', '.join(f'{name} {count:,}' for name, count in params.items())
          + f' (Shared-Bottom bottom layer: {bottom_units} units)', flush=True)
    curves, final = [], []
    for correlation in correlations:
        for repeat in range(repeats):
            frame = synthetic.generate(rows + EVAL_ROWS, correlation, dim=dim, seed=repeat)
            pearson = synthetic.label_correlation(frame)
            x = frame[[f'x_{i}' for i in range(dim)]].to_numpy('float32')
            y = frame[list(synthetic.LABELS)].to_numpy('float32')
            x_eval, y_eval, x, y = x[rows:], y[rows:], x[:rows], y[:rows]
            for name in MODELS:
                curve = train_curve(name, x, y, x_eval, y_eval, steps, eval_every, repeat,
                                    bottom_units)
                curves += [(name, correlation, repeat, (i + 1) * eval_every, loss)
                           for i, loss in enumerate(curve)]
                final.append((name, correlation, repeat, pearson, curve[-1]))
            print(f'p={correlation:g} repeat {repeat}: labels\' Pearson {pearson:.3f}; final eval '
                  'loss ' + ', '.join(f'{n} {loss:.4f}' for n, c, r, _, loss in final
                                     if c == correlation and r == repeat), flush=True)
    return {'curves': curves, 'final': final, 'params': params}


def summary_table(final) -> Dict:
    """{p: {model: (mean, std) of the final eval loss}}"""
    table: Dict[float, Dict] = {}
    for correlation in sorted({row[1] for row in final}):
        table[correlation] = {}
        for name in MODELS:
            losses = [row[4] for row in final if row[0] == name and row[1] == correlation]
            table[correlation][name] = (float(np.mean(losses)), float(np.std(losses)))
    return table


def plot(curves, path: str):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    correlations = sorted({row[1] for row in curves})
    figure, axes = pyplot.subplots(1, len(correlations), figsize=(4.6 * len(correlations), 3.8),
                                   sharey=True, squeeze=False)
    for panel, correlation in zip(axes[0], correlations):
        for name in MODELS:
            steps = sorted({row[3] for row in curves if row[0] == name and row[1] == correlation})
            losses = np.array([[row[4] for row in curves
                                if row[0] == name and row[1] == correlation and row[2] == repeat]
                               for repeat in sorted({row[2] for row in curves})])
            mean, std = losses.mean(axis=0), losses.std(axis=0)
            panel.plot(steps, mean, label=name)
            panel.fill_between(steps, mean - std, mean + std, alpha=0.2)
        panel.set(title=f'correlation p = {correlation:g}', xlabel='training steps', yscale='log')
        panel.grid(alpha=0.3, which='both')
    axes[0][0].set_ylabel('eval loss (mean MSE of the two tasks)')
    axes[0][-1].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def write_outputs(result: Dict, out: str):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, 'curves.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'correlation', 'repeat', 'step', 'eval_loss'])
        writer.writerows(result['curves'])
    with open(os.path.join(out, 'final_losses.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['model', 'correlation', 'repeat', 'label_pearson', 'final_eval_loss'])
        writer.writerows(result['final'])
    plot(result['curves'], os.path.join(out, 'correlation_sweep.png'))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='the few-minute setting')
    parser.add_argument('--correlations', help='p values, comma-separated (default 0.5,0.9,1.0)')
    parser.add_argument('--repeats', type=int, help='data sets and initialisations per p')
    parser.add_argument('--steps', type=int, help='training steps per model')
    parser.add_argument('--rows', type=int, help='training rows per data set')
    parser.add_argument('--eval-every', type=int, help='steps between eval losses')
    parser.add_argument('--out', default='outputs/correlation_sweep')
    args = parser.parse_args(argv)
    settings: Dict[str, Any] = dict(QUICK if args.quick else FULL)
    if args.correlations:
        settings['correlations'] = tuple(float(p) for p in args.correlations.split(','))
    for key in ('repeats', 'steps', 'rows', 'eval_every'):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    started = time.monotonic()
    result = run_sweep(**settings)
    write_outputs(result, args.out)
    table = summary_table(result['final'])
    print(f'\nmean final eval loss over {settings["repeats"]} repeats ({settings["steps"]} steps, '
          f'{settings["rows"]} training rows), in {(time.monotonic() - started) / 60:.1f} min:')
    print('| p | ' + ' | '.join(MODELS) + ' |\n|---:|' + '---:|' * len(MODELS))
    for correlation, losses in table.items():
        print(f'| {correlation:g} | ' + ' | '.join(f'{mean:.4f} ± {std:.4f}'
                                                  for mean, std in losses.values()) + ' |')
    lowest = min(table)
    best = min(table[lowest], key=lambda name: table[lowest][name][0])
    print(f'\nat p = {lowest:g} the lowest mean final loss is {best}\'s: the paper\'s ordering '
          f'(MMoE lowest) is {"reproduced" if best == "MMoE" else "NOT reproduced"}')
    print(f'wrote {args.out}/curves.csv, final_losses.csv, correlation_sweep.png')


if __name__ == '__main__':
    main()
