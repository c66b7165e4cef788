"""What the whole local pipeline costs as the data grows.

    .venv/bin/python bench/pipeline_scaling.py [--sizes 10000,100000] [--with-1m] [--out DIR]

For each size it generates the e-commerce data (`pipeline.datasets.ecommerce`, seed 7) and runs
`local_runner.py` on it into its own output directory, from scratch (--no-cache), with Beam's
DirectRunner in multi-processing mode on 2 workers. It prints, per size, each component's wall
seconds (from the run summary, which reads ML Metadata), rows per second of ExampleGen,
StatisticsGen and Transform (all rows) and of the Evaluators (the eval split), training examples per
second (steps x batch over the Trainer's wall time, which includes its evaluations and export),
and the peak resident memory of the runner and all its child processes. It writes `scaling.csv`
and `scaling.png` (seconds against rows, log-log, a line per component) under --out.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import threading
import time

import psutil

from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.datasets import ecommerce

BEAM_ARGS = ['--beam-arg=--direct_running_mode=multi_processing',
             '--beam-arg=--direct_num_workers=2']
ALL_ROWS = ('CsvExampleGen', 'StatisticsGen', 'Transform')


class PeakMemory:
    """Samples the resident memory of a process and its descendants, summed, every 0.5 s."""

    def __init__(self, pid):
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.is_set():
            try:
                processes = [self.process] + self.process.children(recursive=True)
                total = 0
                for process in processes:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                pass
            self._stop.wait(0.5)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_size(rows: int, out: str) -> dict:
    data = os.path.join(out, f'data-{rows}')
    if not os.path.exists(os.path.join(data, ecommerce.CSV_NAME)):
        ecommerce.write(data, rows=rows, seed=7)
    output = os.path.join(out, f'run-{rows}')
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), '--data', data,
         '--output', output, '--no-cache', *BEAM_ARGS],
        cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakMemory(process.pid)
    log = process.communicate()[0]
    peak = memory.stop()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(f'error: the {rows}-row run failed:\n{log[-3000:]}')
    with open(os.path.join(output, 'run_summary.json')) as f:
        summary = json.load(f)
    component_seconds = {name: node['seconds'] for name, node in summary['nodes'].items()
                         if node.get('seconds') is not None}
    eval_rows = next(iter(summary['tasks'].values()))['metrics']['example_count']
    training = PipelineConfig().training
    rates = {f'{name} rows/s': rows / component_seconds[name] for name in ALL_ROWS}
    rates.update({f'{name} rows/s': eval_rows / seconds_
                  for name, seconds_ in component_seconds.items() if name.startswith('Evaluator')})
    rates['training examples/s'] = (training.train_steps * training.batch_size
                                    / component_seconds['Trainer'])
    return {'rows': rows, 'total seconds': seconds, 'peak memory GB': peak / 2**30,
            'components': component_seconds, 'rates': rates}


def write_outputs(results, out):
    components = sorted({name for r in results for name in r['components']},
                        key=lambda name: -max(r['components'].get(name, 0) for r in results))
    with open(os.path.join(out, 'scaling.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['rows', 'total seconds', 'peak memory GB']
                        + [f'{name} s' for name in components] + list(results[0]['rates']))
        for r in results:
            writer.writerow([r['rows'], round(r['total seconds'], 1),
                             round(r['peak memory GB'], 2)]
                            + [r['components'].get(name, '') for name in components]
                            + [round(v) for v in r['rates'].values()])
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    figure, axes = pyplot.subplots(figsize=(8, 5.5))
    sizes = [r['rows'] for r in results]
    for name in components:
        values = [r['components'].get(name) for r in results]
        if all(v and v >= 0.5 for v in values):
            axes.plot(sizes, values, marker='o', label=name)
    axes.plot(sizes, [r['total seconds'] for r in results], marker='o', color='black',
              linewidth=2, label='whole run')
    axes.set(xscale='log', yscale='log', xlabel='rows', ylabel='wall seconds',
             title='Local pipeline cost against data size (2 Beam workers)')
    axes.grid(alpha=0.3, which='both')
    axes.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc='upper left')
    figure.tight_layout()
    figure.savefig(os.path.join(out, 'scaling.png'), dpi=100)


def print_tables(results):
    components = list(results[0]['components'])
    print('\n| component | ' + ' | '.join(f'{r["rows"]:,} rows' for r in results) + ' |')
    print('|---|' + '---:|' * len(results))
    for name in components:
        print(f'| {name} | ' + ' | '.join(f'{r["components"].get(name, 0):.1f} s'
                                          for r in results) + ' |')
    print('| whole run | ' + ' | '.join(f'{r["total seconds"]:.0f} s' for r in results) + ' |')
    for rate in results[0]['rates']:
        print(f'| {rate} | ' + ' | '.join(f'{r["rates"][rate]:,.0f}' for r in results) + ' |')
    print('| peak memory | ' + ' | '.join(f'{r["peak memory GB"]:.1f} GB' for r in results) + ' |')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='10000,100000', help='row counts, comma-separated')
    parser.add_argument('--with-1m', action='store_true', help='also 1,000,000 rows (long)')
    parser.add_argument('--out', default='/tmp/mmoe-scaling', help='data, runs and results')
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(',')] + ([1_000_000] if args.with_1m else [])
    os.makedirs(args.out, exist_ok=True)
    print(f'machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, '
          f'{psutil.virtual_memory().total / 2**30:.0f} GB')
    results = []
    for rows in sizes:
        result = run_size(rows, args.out)
        print(f'{rows:,} rows: {result["total seconds"]:.0f} s, peak memory '
              f'{result["peak memory GB"]:.1f} GB', flush=True)
        results.append(result)
    write_outputs(results, args.out)
    print_tables(results)
    print(f'\n{os.path.join(args.out, "scaling.csv")}\n{os.path.join(args.out, "scaling.png")}')


if __name__ == '__main__':
    main()
