"""Continuous training over simulated days: the pipeline cold and warm-started, day after day.

    .venv/bin/python bench/continuous_training.py [--days 5] [--rows 40000] [--window-spans 2]
        [--epochs N] [--seed 7] [--beam-arg=...] [--out DIR] [--csv FILE]

Simulates `--days` days of the click log (`pipeline.datasets.clicklog`, one catalogue whose item
popularity drifts by day, `--rows` impressions a day), one `span-<day>/` folder per day, day 1
first. The config is drafted once from day 1's CSV with `pipeline.draft`, as a new user would
(its bounded ids and its gates), then reads the data by span (`csv_pattern: 'span-{SPAN}/*.csv'`)
and trains on `--window-spans` spans. Each day's folder is written before that day's runs, and
each day runs `local_runner.py --config ...` (the newest span, as a daily schedule would) twice
on the same data, into two outputs that every day goes on into: **cold**
(`training.warm_start: false`) and **warm** (`training.warm_start: true`: the Trainer starts from
the model blessed on the newest earlier span). The two alternate which runs first, day by day.
Day 1 is the first span: both train and judge on hash splits of its rows, both from scratch.
Every later day judges on all of that day's rows and trains on the window's spans before it.

Per day it prints: the rows; each run's wall seconds (with the process start); the Trainer's
steps run and the step whose weights it kept (the best validation loss); each task's AUC on the
new day, cold and warm with their 95% intervals (the Evaluators' DeLong intervals), beside the
Bayes AUC of that day's rows (the true probabilities' AUC: no model beats it); the steps the warm
run took to reach the cold run's best validation loss (both Trainers' validation loss after each
evaluation, from their TensorBoard logs, on the same validation rows); the model the warm run
started from; and what came from the cache (the nodes in state CACHED; whether the window's spans
were read by earlier runs, so that only the new span's ExampleGen and StatisticsGen ran). Last, per
contender, how many Examples artifacts each span has in the metadata store (1: never read twice),
and the goals of issue 33: the warm run reaches the cold run's validation loss in at most half
the steps, and its AUC on the new day is no worse than cold's within the interval (warm's AUC not
below the lower end of cold's 95% interval; the two models' intervals, not a paired test of their
difference). The steps goal leaves out, naming it, a day whose warm run started from a model that
learned on the very rows it trains on (day 2: its window is span 1 alone, which day 1's model
learned and stopped early on): that base model has the cold run's loss before its first step. Each
row also says whether the gate blessed each model. The table also goes to `--csv`.
"""

import argparse
import csv
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import yaml

from pipeline import draft
from pipeline.config import PROJECT_DIR
from pipeline.datasets import clicklog

CONTENDERS = ('cold', 'warm')
GOAL_STEP_SHARE = 0.5
# The runs get the environment as it was; this process reads TensorBoard logs and TFMA output
# with TensorFlow, whose C++ warnings would land in the table.
RUNNER_ENV = dict(os.environ)
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def write_configs(out: str, data: str, window_spans: int, epochs) -> dict:
    """{contender: config path}: drafted from day 1's CSV, then by span, cold and warm."""
    project = os.path.join(out, 'project')
    draft.draft(os.path.join(data, 'span-1', clicklog.CSV_NAME), project,
                pipeline_name='continuous_training')
    with open(os.path.join(project, 'config.yaml')) as f:
        drafted = yaml.safe_load(f)
    drafted.update(data=data, csv_pattern='span-{SPAN}/*.csv')
    drafted['training']['window_spans'] = window_spans
    if epochs is not None:
        drafted['training']['epochs'] = epochs
    paths = {}
    for contender in CONTENDERS:
        config = dict(drafted, training=dict(drafted['training'],
                                             warm_start=contender == 'warm'))
        paths[contender] = os.path.join(project, f'{contender}.yaml')
        with open(paths[contender], 'w') as f:
            yaml.safe_dump(config, f, sort_keys=False)
    return paths


def run(config: str, output: str, beam_args) -> dict:
    """One day's run of `local_runner.py` into `output`; returns its summary with the wall seconds."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'),
                             '--config', config, '--output', output, *beam_args],
                            cwd=PROJECT_DIR, env=RUNNER_ENV, capture_output=True, text=True,
                            check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f'error: the run into {output} failed:\n{(result.stdout + result.stderr)[-3000:]}')
    with open(os.path.join(output, 'run_summary.json')) as f:
        summary = json.load(f)
    summary['wall seconds'] = seconds
    return summary


def validation_losses(model_run_uri: str, steps_run: int) -> list:
    """[(step, validation loss)] after each evaluation, from the Trainer's TensorBoard logs (Keras
    logs an epoch of `steps_per_evaluation` steps per evaluation)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    losses = {}
    for path in sorted(glob.glob(os.path.join(model_run_uri, 'validation', 'events.out.*'))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == 'epoch_loss':
                    losses[event.step] = float(tf.make_ndarray(value.tensor))
    if not losses:
        return []
    per_evaluation = steps_run // len(losses)
    return [((epoch + 1) * per_evaluation, loss) for epoch, loss in sorted(losses.items())]


def auc_intervals(evaluation_uri: str) -> dict:
    """The AUC and its 95% interval over the eval rows: {'value', 'lower', 'upper'}."""
    from components.blessing_gate import overall_intervals  # pylint: disable=import-outside-toplevel
    return overall_intervals(evaluation_uri).get('auc', {})


def contender_result(summary: dict) -> dict:
    """What the table shows of one run."""
    trainer = summary['nodes']['Trainer']
    properties = summary['trained_model']['properties']
    steps = json.loads(properties['trainer_settings'])['steps']
    warm_start = json.loads(properties.get('warm_start') or '{}')
    base_training_data = None
    if warm_start.get('warm'):
        # pylint: disable-next=import-outside-toplevel
        from components.trainer_executor import read_provenance
        base = warm_start['base_model'].split('/Format-Serving')[0]
        base_training_data = read_provenance(base)['data'].get('train')
    aucs = {}
    for task, result in summary['tasks'].items():
        interval = auc_intervals(result['evaluation'])
        aucs[task] = {'value': result['metrics']['auc'], 'lower': interval.get('lower'),
                      'upper': interval.get('upper'),
                      'blessed': bool((result['verdict'] or {}).get('blessed'))}
    return {
        'seconds': summary['wall seconds'], 'pipeline seconds': summary['seconds'],
        'steps': steps, 'trainer state': trainer['state'],
        'model': summary['trained_model']['uri'],
        'validation fingerprint': properties.get('validation_data_fingerprint'),
        # The base model learned on the very rows this run trains on (a window that did not move).
        'base on the same rows': (base_training_data is not None
                                  and base_training_data == properties.get('train_data_fingerprint')),
        'curve': validation_losses(trainer['outputs']['model_run'][0]['uri'], steps['run']),
        'warm from': warm_start.get('base_model', '') if warm_start.get('warm') else '',
        'cold because': '' if warm_start.get('warm') else warm_start.get('reason', ''),
        'blessed': all(auc['blessed'] for auc in aucs.values()),
        'cached': [node for node, values in summary['nodes'].items()
                   if values['state'] == 'CACHED'],
        'read first': summary['spans']['read_first'],
        'window': summary['spans']['window'],
        'examples': summary['nodes']['CsvExampleGen']['state'],
        'statistics': summary['nodes']['StatisticsGen']['state'],
        'auc': aucs,
    }


def steps_to_reach(curve: list, target: float):
    """The first evaluation step whose validation loss is at most `target`; None if none is."""
    return next((step for step, loss in curve if loss <= target), None)


def artifacts_per_span(metadata: str):
    """({span: Examples artifacts of it}, ExampleStatistics artifacts) in the metadata store at
    `metadata`."""
    from pipeline.run_report import sqlite_store  # pylint: disable=import-outside-toplevel
    store = sqlite_store(metadata)
    counts = {}
    for artifact in store.get_artifacts_by_type('Examples'):
        if 'span' in artifact.custom_properties:
            span = artifact.custom_properties['span'].int_value
            counts[span] = counts.get(span, 0) + 1
    return dict(sorted(counts.items())), len(store.get_artifacts_by_type('ExampleStatistics'))


def compare(day: int, rows: int, bayes: dict, results: dict, model_day: dict) -> dict:
    """One table row: the day's cold and warm results side by side, and the goals' checks."""
    cold, warm = results['cold'], results['warm']
    row = {'day': day, 'rows': rows, 'cold': cold, 'warm': warm, 'bayes': bayes}
    cold_best = min((loss for _, loss in cold['curve']), default=None)
    row['cold best loss'] = cold_best
    row['warm best loss'] = min((loss for _, loss in warm['curve']), default=None)
    row['cold steps to best'] = cold['steps']['kept']
    row['warm steps to cold best'] = (steps_to_reach(warm['curve'], cold_best)
                                      if cold_best is not None else None)
    row['same validation rows'] = cold['validation fingerprint'] == warm['validation fingerprint']
    base = warm['warm from'].split('/Format-Serving')[0]
    if base:
        row['warm from'] = f"day {model_day[base]}'s model" if base in model_day else base
    else:
        row['warm from'] = 'cold' + (f': {warm["cold because"]}' if warm['cold because'] else '')
    return row


def _steps(result):
    return f'{result["steps"]["run"]}/{result["steps"]["kept"]}'


def _auc(auc):
    if auc['lower'] is None:
        return f'{auc["value"]:.4f}'
    return f'{auc["value"]:.4f} [{auc["lower"]:.3f}, {auc["upper"]:.3f}]'


def _reached(row):
    if row['day'] == 1:
        return 'first span: both cold'
    needed = row['warm steps to cold best']
    started_cold = '' if row['warm']['warm from'] else ' (the warm run started cold)'
    if row['warm']['base on the same rows']:
        started_cold = ' (its base model learned on these very rows)'
    if needed is None:
        return (f'not reached (best {row["warm best loss"]:.4f} > {row["cold best loss"]:.4f})'
                + started_cold)
    return (f'{needed} of {row["cold steps to best"]} ({needed / row["cold steps to best"]:.2f})'
            + started_cold)


def _cache(result):
    cached = ', '.join(result['cached']) or 'nothing'
    if not result['window']:
        return cached
    window = ('window: earlier runs\' spans' if not result['read first'] else
              f'window: spans {result["read first"]} read first')
    ran = [name for name, state in (('ExampleGen', result['examples']),
                                    ('StatisticsGen', result['statistics']))
           if state == 'COMPLETE']
    return f'{cached}; {window}; ran on the new span: {", ".join(ran) or "none"}'


def print_row(row, tasks, header=False):
    columns = (['day', 'rows', 'seconds cold / warm', 'blessed cold / warm', 'steps run/kept cold',
                'steps run/kept warm']
               + [f'{task} AUC {kind}' for task in tasks for kind in ('cold', 'warm', 'Bayes')]
               + ['warm steps to cold best val. loss', 'warm from', 'cached (cold)',
                  'cached (warm)'])
    if header:
        print('\n| ' + ' | '.join(columns) + ' |')
        print('|' + '---:|' * 3 + '---|' + '---:|' * (2 + 3 * len(tasks)) + '---|' * 4)
    cold, warm = row['cold'], row['warm']
    cells = [str(row['day']), f'{row["rows"]:,}', f'{cold["seconds"]:.0f} / {warm["seconds"]:.0f}',
             f'{"yes" if cold["blessed"] else "no"} / {"yes" if warm["blessed"] else "no"}',
             _steps(cold), _steps(warm)]
    for task in tasks:
        cells += [_auc(cold['auc'][task]), _auc(warm['auc'][task]),
                  f'{row["bayes"][task]:.4f}']
    cells += [_reached(row), row['warm from'], _cache(cold), _cache(warm)]
    print('| ' + ' | '.join(cells) + ' |', flush=True)


def write_csv(rows, tasks, path):
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            ['day', 'rows']
            + [f'{c} {k}' for c in CONTENDERS for k in ('seconds', 'pipeline seconds', 'blessed',
                                                         'steps run', 'step kept',
                                                         'best validation loss')]
            + [f'{task} {k}' for task in tasks for k in ('cold auc', 'cold lower', 'cold upper',
                                                         'warm auc', 'warm lower', 'warm upper',
                                                         'bayes auc')]
            + ['warm steps to cold best', 'warm from', 'cold cached', 'warm cached',
               'warm read first'])
        for row in rows:
            cells = [row['day'], row['rows']]
            for contender in CONTENDERS:
                result = row[contender]
                best = row[f'{contender} best loss']
                cells += [round(result['seconds'], 1), result['pipeline seconds'],
                          int(result['blessed']),
                          result['steps']['run'], result['steps']['kept'],
                          '' if best is None else round(best, 5)]
            for task in tasks:
                for contender in CONTENDERS:
                    auc = row[contender]['auc'][task]
                    cells += [round(auc['value'], 5)] + ['' if auc[k] is None else round(auc[k], 5)
                                                         for k in ('lower', 'upper')]
                cells.append(row['bayes'][task])
            cells += ['' if row['day'] == 1 or row['warm steps to cold best'] is None
                      else row['warm steps to cold best'], row['warm from'],
                      ' '.join(row['cold']['cached']), ' '.join(row['warm']['cached']),
                      ' '.join(map(str, row['warm']['read first']))]
            writer.writerow(cells)


def goals(rows, tasks):
    """[(goal, measured, met)] over the days after the first. The steps goal leaves out a day whose
    warm run started from a model that learned on the very rows it trains on (its window did not
    move: day 2 with a window of more than one span), saying so: that base model already has
    the loss the cold run reaches, before its first evaluation."""
    later = [row for row in rows if row['day'] > 1]
    if not later:
        return []
    shares, measured = [], []
    for row in later:
        needed, best = row['warm steps to cold best'], row['cold steps to best']
        share = None if needed is None else needed / best
        if row['warm']['base on the same rows']:
            measured.append(f'day {row["day"]} left out (its base model learned on its rows)')
            continue
        shares.append(share)
        measured.append(f'day {row["day"]} ' + ('not reached' if share is None else f'{share:.2f}'))
    checks = [(f'warm reaches the cold run\'s best validation loss in at most '
               f'{GOAL_STEP_SHARE:.0%} of the cold run\'s steps to it, every day after the first',
               ', '.join(measured),
               bool(shares) and all(share is not None and share <= GOAL_STEP_SHARE
                                    for share in shares))]
    worse = []
    for row in later:
        for task in tasks:
            cold, warm = row['cold']['auc'][task], row['warm']['auc'][task]
            if warm['value'] < (cold['lower'] if cold['lower'] is not None else cold['value']):
                worse.append(f'day {row["day"]} {task}')
    gaps = ', '.join(
        f'{task} ' + format(min(r['warm']['auc'][task]['value'] - r['cold']['auc'][task]['value']
                                for r in later), '+.4f')
        for task in tasks)
    checks.append(('warm AUC on the new day no worse than cold within the interval (warm not '
                   'below the lower end of cold\'s 95% interval), every task, every day after the '
                   'first', f'worst warm - cold: {gaps}' + (f'; below: {", ".join(worse)}'
                                                            if worse else ''), not worse))
    return checks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--days', type=int, default=5, help='simulated days (spans), day 1 first')
    parser.add_argument('--rows', type=int, default=40000, help='impressions a day')
    parser.add_argument('--window-spans', type=int, default=2,
                        help='training.window_spans: the spans each day trains on')
    parser.add_argument('--epochs', type=float,
                        help="training.epochs (default: the drafted config's)")
    parser.add_argument('--seed', type=int, default=7, help="the click log's seed")
    parser.add_argument('--beam-arg', action='append', default=[], metavar='ARG',
                        help='passed on to local_runner.py, e.g. '
                             '--beam-arg=--direct_running_mode=multi_processing')
    parser.add_argument('--out', default='/tmp/mmoe-continuous-training',
                        help='data, configs and the two outputs (its data/, project/, cold/ and '
                             'warm/ are replaced)')
    parser.add_argument('--csv', help='the table as CSV (default: OUT/continuous_training.csv)')
    args = parser.parse_args(argv)
    if args.days < 2:
        sys.exit('error: --days: at least 2 (day 1 is the first span, which nothing warm-starts)')
    beam_args = [f'--beam-arg={arg}' for arg in args.beam_arg]
    # A fresh start: the two outputs' caches and models are the point of the bench.
    for name in ('data', 'project', *CONTENDERS):
        shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)
    data = os.path.join(args.out, 'data')
    outputs = {contender: os.path.join(args.out, contender) for contender in CONTENDERS}
    print(f'machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; '
          f'{args.days} days of {args.rows:,} rows, window {args.window_spans} spans, '
          f'seed {args.seed}; out {args.out}', flush=True)
    rows, tasks, model_day = [], None, {}
    configs = None
    for day in range(1, args.days + 1):
        bayes = clicklog.write_days(data, 1, args.rows, args.seed, first_day=day)[day]['bayes_auc']
        if configs is None:
            configs = write_configs(args.out, data, args.window_spans, args.epochs)
        order = CONTENDERS if day % 2 else tuple(reversed(CONTENDERS))
        results = {}
        for contender in order:
            summary = run(configs[contender], outputs[contender], beam_args)
            if summary['spans']['span'] != day:
                sys.exit(f'error: the {contender} run of day {day} judged on '
                         f'{summary["spans"]["judged_on"]}')
            results[contender] = contender_result(summary)
            model_day.setdefault(results[contender]['model'], day)
            print(f'day {day} {contender}: {results[contender]["seconds"]:.0f} s', flush=True)
        if tasks is None:
            tasks = list(results['cold']['auc'])
        by_label = {label: name for name, label in clicklog.TASK_LABELS.items()}
        # The drafted tasks are named after their labels (click, purchase); the Bayes AUC on all of
        # the day's rows, which the runs after the first judge on.
        day_bayes = {task: bayes[by_label.get(task, task)]['on_sample'] for task in tasks}
        row = compare(day, args.rows, day_bayes, results, model_day)
        if not row['same validation rows']:
            print(f'warning: day {day}: the cold and warm Trainers validated on different rows',
                  flush=True)
        rows.append(row)
    print('\nseconds: each run\'s wall time, process start included; steps run/kept: the '
          'Trainer\'s steps and the step whose weights it kept (its best validation loss); AUC '
          'on all of the new day\'s rows (day 1: its hash eval split) with the 95% interval; '
          'Bayes: the true probabilities\' AUC on the same rows; warm steps to cold best val. '
          'loss: the first of the warm Trainer\'s evaluations whose validation loss is at most the '
          'cold run\'s best, of the cold run\'s steps to its best (both on the same validation '
          'rows; evaluations come every quarter pass, so a step count is known to that '
          'granularity)')
    for index, row in enumerate(rows):
        print_row(row, tasks, header=index == 0)
    for contender in CONTENDERS:
        counts, statistics = artifacts_per_span(
            os.path.join(outputs[contender], 'metadata.sqlite'))
        print(f'{contender}: in the metadata store, Examples artifacts per span: '
              + ', '.join(f'span {span}: {count}' for span, count in counts.items())
              + f'; ExampleStatistics artifacts: {statistics}'
              + (' (each span read and described once)'
                 if set(counts.values()) == {1} and statistics == len(counts) else ''))
    checks = goals(rows, tasks)
    print('\n| goal | measured | met |\n|---|---|---|')
    for goal, measured, met in checks:
        print(f'| {goal} | {measured} | {"yes" if met else "NO"} |')
    path = args.csv or os.path.join(args.out, 'continuous_training.csv')
    write_csv(rows, tasks, path)
    print(f'\n{path}')


if __name__ == '__main__':
    main()
