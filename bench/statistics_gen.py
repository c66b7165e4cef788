"""TFX's StatisticsGen executor and ours (components/statistics_gen.py) on the same Examples.

    .venv/bin/python bench/statistics_gen.py [--rows 1000000] [--rounds 3] [--out DIR]

Generates the e-commerce data (`pipeline.datasets.ecommerce`, seed 7, the bundled layout's 16
columns), turns it into an Examples artifact with the pipeline's CsvExampleGen executor and the
default config's splits (train, validation, eval 8:1:1 by hash), both kept under --out for the
next run, then runs TFX's StatisticsGen executor and ours alternately on it, `--rounds` times each,
with the local runner's Beam settings (in-memory DirectRunner, one worker), each run in a fresh
process of its own (as a pipeline runs a component), timing the executor's `Do` alone (not the
process start and imports).

Prints the load average before and after, each run's wall and CPU seconds and rows per second (all
splits' rows), the medians, their ratio (ours over TFX's), how the last runs' statistics compare
(the exact ones: counts, missing counts, values per row, min and max, top values, unique counts;
TFDV's approximate quantiles and histograms; the largest relative difference of a mean or standard
deviation), and the goal (ours at least 60,000 rows/s at 1M rows), with what it measured and
whether it is met. The machine's load moves every rate; the ratio of alternating runs is what
carries over to another machine or another load.
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Tuple

from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.datasets import ecommerce

GOAL_ROWS_PER_SECOND = 60_000
EXECUTORS = {'tfx': 'tfx.components.statistics_gen.executor',
             'ours': 'components.statistics_gen'}

# One executor run, in a process of its own: argv = executor module, examples URI, output URI.
_RUN_ONE = r'''
import importlib, json, resource, sys, time
sys.path.insert(0, {project!r})
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys
from local_runner import LOCAL_BEAM_ARGS

module, examples_uri, output_uri, tmp = sys.argv[1:]
executor_class = importlib.import_module(module).Executor
examples = standard_artifacts.Examples()
examples.uri = examples_uri
examples.split_names = artifact_utils.encode_split_names(json.loads(open(
    examples_uri + '/splits.json').read()))
examples.span = 0
statistics = standard_artifacts.ExampleStatistics()
statistics.uri = output_uri
executor = executor_class(executor_class.Context(beam_pipeline_args=list(LOCAL_BEAM_ARGS),
                                                 tmp_dir=tmp, unique_id='1'))


def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


started, started_cpu = time.monotonic(), cpu()
executor.Do({{keys.EXAMPLES_KEY: [examples]}}, {{keys.STATISTICS_KEY: [statistics]}},
            {{keys.EXCLUDE_SPLITS_KEY: '[]'}})
print('SECONDS', time.monotonic() - started, cpu() - started_cpu)
'''


def make_examples(out: str, rows: int) -> str:
    """The URI of an Examples artifact of `rows` generated rows, made once under `out`."""
    examples_uri = os.path.join(out, f'examples-{rows}')
    if os.path.exists(os.path.join(examples_uri, 'splits.json')):
        return examples_uri
    data = os.path.join(out, f'data-{rows}')
    if not os.path.exists(os.path.join(data, ecommerce.CSV_NAME)):
        ecommerce.write(data, rows=rows, seed=7)
    from tfx.proto import example_gen_pb2
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.types import standard_component_specs as keys
    from tfx.utils import proto_utils

    from components import csv_example_gen
    from pipeline import pipeline

    config = PipelineConfig()
    split_configs, split_off_train = pipeline._split_configs(config)  # pylint: disable=protected-access
    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    csv_example_gen.Executor().Do({}, {keys.EXAMPLES_KEY: [examples]}, {
        keys.INPUT_BASE_KEY: data,
        keys.INPUT_CONFIG_KEY: proto_utils.proto_to_json(split_configs['input_config']),
        keys.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            split_configs.get('output_config', example_gen_pb2.Output())),
        keys.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(
            csv_example_gen.custom_config(config.schema, 'fail', split_off_train)),
        keys.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        keys.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    })
    with open(os.path.join(examples_uri, 'splits.json'), 'w') as f:
        json.dump(artifact_utils.decode_split_names(examples.split_names), f)
    return examples_uri


def run_one(name: str, examples_uri: str, output_uri: str) -> Tuple[float, float]:
    """(Wall seconds, CPU seconds of all its threads) of one `Do` of executor `name` ('tfx' or
    'ours'), in a process of its own."""
    shutil.rmtree(output_uri, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, '-c', _RUN_ONE.format(project=PROJECT_DIR), EXECUTORS[name],
             examples_uri, output_uri, tmp],
            cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f'error: the {name} run failed:\n{(result.stdout + result.stderr)[-3000:]}')
    wall, cpu = result.stdout.split('SECONDS')[-1].split()
    return float(wall), float(cpu)


def _split_statistics(output_uri: str) -> Dict[str, Any]:
    """{split: {feature path: its FeatureNameStatistics}} of a statistics artifact's output."""
    import tensorflow_data_validation as tfdv
    found = {}
    for path in sorted(glob.glob(os.path.join(output_uri, 'Split-*', 'FeatureStats.pb'))):
        dataset = tfdv.load_stats_binary(path).datasets[0]
        found[os.path.basename(os.path.dirname(path))] = {
            tuple(feature.path.step): feature for feature in dataset.features}
    return found


def _parts(feature) -> Tuple[bytes, bytes, List[float]]:
    """(Every exact statistic of a feature, serialized; its approximate ones (TFDV's quantiles:
    histograms, median, the histogram of values per row), serialized; [mean, std_dev])."""
    exact, approximate = type(feature)(), type(feature)()
    exact.CopyFrom(feature)
    moments = []
    for kind in ('num_stats', 'string_stats', 'bytes_stats', 'struct_stats'):
        if exact.HasField(kind):
            stats = getattr(exact, kind)
            getattr(approximate, kind).common_stats.num_values_histogram.CopyFrom(
                stats.common_stats.num_values_histogram)
            stats.common_stats.ClearField('num_values_histogram')
    if exact.HasField('num_stats'):
        approximate.num_stats.histograms.extend(exact.num_stats.histograms)
        approximate.num_stats.median = exact.num_stats.median
        moments = [exact.num_stats.mean, exact.num_stats.std_dev]
        for name in ('histograms', 'median', 'mean', 'std_dev'):
            exact.num_stats.ClearField(name)
    return (exact.SerializeToString(deterministic=True),
            approximate.SerializeToString(deterministic=True), moments)


def compare(ours_uri: str, theirs_uri: str) -> List[str]:
    """Lines saying how our statistics compare with TFX's: the exact statistics (counts, missing,
    min/max, top values, unique counts, values per row), the approximate ones (quantiles and
    histograms) and the largest relative difference of a mean or standard deviation (sums of
    floats, added in another order)."""
    ours, theirs = _split_statistics(ours_uri), _split_statistics(theirs_uri)
    if sorted(ours) != sorted(theirs) or any(sorted(ours[s]) != sorted(theirs[s]) for s in ours):
        return ['NOT the same splits and features as TFX\'s']
    exact, approximate, largest = [], [], 0.0
    for split, features in theirs.items():
        for path, feature in features.items():
            a, b = _parts(ours[split][path]), _parts(feature)
            if a[0] != b[0]:
                exact.append(f'{split} {".".join(path)}')
            if a[1] != b[1]:
                approximate.append(f'{split} {".".join(path)}')
            for x, y in zip(a[2], b[2]):
                largest = max(largest, abs(x - y) / max(abs(y), 1e-300))
    same = "the same as TFX's"
    return [f'exact statistics: {same if not exact else "DIFFERENT in " + ", ".join(exact)}',
            'quantiles and histograms: '
            f'{same if not approximate else "different in " + ", ".join(approximate)}',
            f'means and standard deviations: at most {largest:.1e} apart (relative)']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--out', default='/tmp/mmoe-statistics-gen')
    args = parser.parse_args(argv)
    examples_uri = make_examples(args.out, args.rows)
    print(f'load average before: {" ".join(f"{load:.1f}" for load in os.getloadavg())}')
    runs: Dict[str, List[Tuple[float, float]]] = {name: [] for name in EXECUTORS}
    for round_ in range(args.rounds):
        # Alternating, each round's first executor in turn.
        for name in (list(EXECUTORS) if round_ % 2 == 0 else list(EXECUTORS)[::-1]):
            wall, cpu = run_one(name, examples_uri, os.path.join(args.out, f'statistics-{name}'))
            runs[name].append((wall, cpu))
            print(f'round {round_ + 1} {name}: {wall:.1f} s ({cpu:.1f} s CPU), '
                  f'{args.rows / wall:,.0f} rows/s', flush=True)
    print(f'load average after: {" ".join(f"{load:.1f}" for load in os.getloadavg())}')
    rates = {name: args.rows / statistics.median(wall for wall, _ in values)
             for name, values in runs.items()}
    print(f'\n| executor, {args.rows:,} rows | seconds | CPU seconds | median rows/s |')
    print('|---|---:|---:|---:|')
    for name, values in runs.items():
        print(f'| {"TFX 1.16" if name == "tfx" else "ours"} | '
              f'{", ".join(f"{wall:.1f}" for wall, _ in values)} | '
              f'{", ".join(f"{cpu:.1f}" for _, cpu in values)} | {rates[name]:,.0f} |')
    round_ratios = [theirs[0] / ours[0] for ours, theirs in zip(runs['ours'], runs['tfx'])]
    print(f'ratio ours / TFX: {rates["ours"] / rates["tfx"]:.2f} (of the medians), '
          f'{statistics.median(round_ratios):.2f} (median of the rounds)')
    for line in compare(os.path.join(args.out, 'statistics-ours'),
                        os.path.join(args.out, 'statistics-tfx')):
        print(line)
    print(f'\ngoal: StatisticsGen at least {GOAL_ROWS_PER_SECOND:,} rows/s at {args.rows:,} rows: '
          f'measured {rates["ours"]:,.0f}: '
          f'{"met" if rates["ours"] >= GOAL_ROWS_PER_SECOND else "NOT met"}')


if __name__ == '__main__':
    main()
