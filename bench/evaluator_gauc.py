"""The Evaluators with and without the group AUC, on the same data and model, side by side.

    .venv/bin/python bench/evaluator_gauc.py [--rows 1000000] [--rounds 2] [--out DIR]

Generates the e-commerce data (`pipeline.datasets.ecommerce`, seed 7), runs the whole local
pipeline on it once with the group AUC on (the default config: `evaluation.group_by: user_id`),
then alternates runs into the same output that change only what the Evaluators read: without
groups (`evaluation.group_by=null`) and with them. Each run gives the gates a confidence of its
own, so that TFX's cache reruns the Evaluators while ExampleGen, StatisticsGen, Transform and the
Trainer come from it; the candidate is the first run's model every time, and no run has a
baseline (the baseline is never the candidate itself), so every Evaluator scores one model.

Prints each run's Evaluators' eval rows per second, the medians with and without groups and their
ratio, the first run's AUC and GAUC per task, and the goal (each Evaluator at least 5,000 eval
rows/s with the group AUC on), with what it measured and whether it is met.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from pipeline.config import PROJECT_DIR
from pipeline.datasets import ecommerce

GOAL_ROWS_PER_SECOND = 5000


def _tasks(confidence: float) -> str:
    return 'tasks=' + json.dumps([{'name': task, 'label': label,
                                   'gate': {'metric': 'auc', 'confidence': confidence}}
                                  for task, label in ecommerce.TASK_LABELS.items()])


def run(data: str, output: str, grouped: bool, confidence: float, cache: bool) -> dict:
    """One local run; returns its summary with the wall seconds."""
    flags = ['--data', data, '--output', output, '--set', _tasks(confidence)]
    if not grouped:
        flags += ['--set', 'evaluation.group_by=null']
    if not cache:
        flags.append('--no-cache')
    started = time.monotonic()
    result = subprocess.run([sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), *flags],
                            cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f'error: a run failed:\n{(result.stdout + result.stderr)[-3000:]}')
    with open(os.path.join(output, 'run_summary.json')) as f:
        summary = json.load(f)
    summary['wall seconds'] = time.monotonic() - started
    return summary


def evaluator_rates(summary: dict) -> dict:
    """{task: eval rows per second of its Evaluator}."""
    return {task: result['metrics']['example_count']
            / summary['nodes'][f'Evaluator.{task}']['seconds']
            for task, result in summary['tasks'].items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--rounds', type=int, default=2,
                        help='pairs of Evaluator runs (without, then with groups) after the first')
    parser.add_argument('--out', default='/tmp/mmoe-evaluator-gauc')
    args = parser.parse_args(argv)
    data = os.path.join(args.out, f'data-{args.rows}')
    if not os.path.exists(os.path.join(data, ecommerce.CSV_NAME)):
        ecommerce.write(data, rows=args.rows, seed=7)
    output = os.path.join(args.out, f'run-{args.rows}')
    first = run(data, output, grouped=True, confidence=0.95, cache=False)
    print(f'first run ({args.rows:,} rows, every component): {first["wall seconds"]:.0f} s')
    for task, result in first['tasks'].items():
        metrics = result['metrics']
        print(f'  {task}: auc {metrics["auc"]:.4f}  gauc {metrics["gauc"]:.4f} over '
              f'{int(metrics["gauc_groups"]):,} users ({metrics["gauc_coverage"]:.1%} of '
              f'{int(metrics["example_count"]):,} eval rows)')
    runs = [(True, evaluator_rates(first))]  # (with groups, {task: rows/s}), in run order
    for round_ in range(args.rounds):
        for grouped in (False, True):
            summary = run(data, output, grouped, confidence=0.9 - 0.01 * round_ - 0.001 * grouped,
                          cache=True)
            runs.append((grouped, evaluator_rates(summary)))
    tasks = list(runs[0][1])
    print('\n| run | ' + ' | '.join(f'Evaluator.{task} rows/s' for task in tasks) + ' |')
    print('|---|' + '---:|' * len(tasks))
    for grouped, found in runs:
        print(f'| {"with" if grouped else "without"} GAUC | '
              + ' | '.join(f'{found[task]:,.0f}' for task in tasks) + ' |')
    medians = {grouped: {task: statistics.median(r[task] for g, r in runs if g == grouped)
                         for task in tasks}
               for grouped in {g for g, _ in runs}}
    for task in tasks:
        line = f'median {task}: with GAUC {medians[True][task]:,.0f} rows/s'
        if False in medians:
            line += (f', without {medians[False][task]:,.0f} rows/s, ratio '
                     f'{medians[True][task] / medians[False][task]:.2f}')
        print(line)
    slowest = min(medians[True].values())
    print(f'\ngoal: each Evaluator at least {GOAL_ROWS_PER_SECOND:,} eval rows/s with GAUC on at '
          f'{args.rows:,} rows: measured {slowest:,.0f} (slowest median): '
          f'{"met" if slowest >= GOAL_ROWS_PER_SECOND else "NOT met"}')


if __name__ == '__main__':
    main()
