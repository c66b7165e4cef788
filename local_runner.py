"""Runs the MMOE pipeline on this machine: Beam's DirectRunner and a SQLite ML Metadata store.

    python local_runner.py                              # the bundled e-commerce data
    python local_runner.py --data DIR --config FILE     # your CSVs, your config (pipeline.draft)
    python local_runner.py --set model.num_experts=4 --epochs 5
    python local_runner.py --data DIR --config FILE --span 12   # data by span: one day's run

Everything a run writes goes under --output (default ./outputs): pipeline_root/ (artifacts),
metadata.sqlite, serving_model/ (pushed models), logs/, and run_summary.json.
"""

import argparse
import csv
import glob
import itertools
import json
import os
import sys
import time
from typing import List, Optional

from pipeline import output_lock, spans
from pipeline.cli import add_pipeline_flags, config_from_flags
from pipeline.config import PROJECT_DIR, ConfigError, PipelineConfig

# Beam's arguments for a run on this machine; --beam-arg adds to them, and a flag given there wins.
# - in-memory DirectRunner, one worker: the small data of a local run is not worth processes;
# - cloudpickle: dill, Beam's default pickler, resets a logger's level on every pickle, which makes
#   Python clear the cache of every logger in the process (thousands, with TensorFlow and Beam
#   loaded), once per pickle of the thousands in a run (docs/performance.md);
# - a setup file: without one of the dependency flags, TFX builds an sdist of the whole TFX install
#   before every Beam component; the DirectRunner installs nothing, and a remote
#   runner gets this project, which its workers need.
LOCAL_BEAM_ARGS = ('--direct_running_mode=in_memory', '--direct_num_workers=1',
                   '--pickle_library=cloudpickle', f'--setup_file={PROJECT_DIR}/setup.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_flags(parser)
    parser.add_argument('--output', default='outputs', help='where everything is written')
    parser.add_argument('--no-cache', action='store_true', help='run every component again')
    parser.add_argument('--span', type=int,
                        help='data by span (csv_pattern with {SPAN} or a date): the span to judge '
                             'on, trained on the spans before it (default: the newest)')
    parser.add_argument('--backfill', action='store_true',
                        help='with --span: a span older than the serving model\'s is meant')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='show TensorFlow, Beam and TFX logging on the terminal')
    return parser.parse_args(argv)


def _has_rows(csv_file: str) -> bool:
    """Whether a CSV file has a line after its header."""
    with open(csv_file, errors='replace') as f:
        return any(line.strip() for line in itertools.islice(f, 1, None))


def _header(csv_file: str) -> List[str]:
    """A CSV file's column names."""
    with open(csv_file, errors='replace', newline='') as f:
        return [name.strip() for name in next(csv.reader(f), [])]


def check_inputs(config: PipelineConfig, csv_pattern: Optional[str] = None):
    """Fails fast, before any component, on a missing or empty data directory or schema.
    `csv_pattern`: the files a run reads instead of the config's (one span's)."""
    if not os.path.isdir(config.data):
        raise ConfigError(f'data: {config.data} is not a directory')
    csv_pattern = csv_pattern or config.csv_pattern
    for pattern in filter(None, (csv_pattern, config.eval_csv_pattern)):
        files = sorted(glob.glob(os.path.join(config.data, pattern)))
        if not files:
            raise ConfigError(f'data: no file matches {pattern} in {config.data}')
        empty = [f for f in files if os.path.getsize(f) == 0]
        if empty:
            raise ConfigError(f'data: {empty[0]} is empty')
        if not any(_has_rows(f) for f in files):
            raise ConfigError(f'data: {", ".join(files)} {"has" if len(files) == 1 else "have"} '
                              'a header but no rows')
    if not os.path.isfile(config.schema):
        raise ConfigError(f'schema: {config.schema} does not exist')
    # The group AUC groups the eval examples: a column the eval files lack would leave every
    # Evaluator without its groups after the whole pipeline before it ran.
    group_by = config.evaluation.group_by
    if group_by is not None:
        for path in sorted(glob.glob(os.path.join(config.data, config.eval_csv_pattern
                                                  or csv_pattern))):
            if group_by not in _header(path):
                raise ConfigError(f'evaluation.group_by: {group_by!r} is not a column of {path}, '
                                  'which the eval split is read from')


def _print_summary(summary, paths, seconds, stream):
    # pylint: disable=import-outside-toplevel
    from components.blessing_gate import describe, gated_metric
    from components.group_auc import GROUPS
    from trainer_module import vocabulary_report
    from trainer_module.task_types import METRICS
    from trainer_module.task_types.binary import CALIBRATION
    took = f'{seconds / 60:.1f} min' if seconds >= 60 else f'{seconds:.0f} s'
    stream.write(f'\nPipeline finished in {took}.\n')
    for task, result in summary['tasks'].items():
        metrics, verdict = result['metrics'], result['verdict']
        gated = gated_metric(verdict or {}, metrics)
        # The gated metric by name first, then the other metrics with intervals and the count.
        names = [gated] + [name for name in METRICS if name != gated and name in metrics
                           and name != CALIBRATION.name]
        counts = {GROUPS: 'groups', 'example_count': 'examples'}
        shown = '  '.join([f'{name} {metrics[name]:.4g}' + (' (gated)' if name == gated else '')
                           for name in names if name in metrics]
                          + [f'{label} {int(metrics[name]):,}' for name, label in counts.items()
                             if name in metrics])
        stream.write(f'  {task}: {shown}  -> '
                     f'{describe(verdict) if verdict else "not judged (the gate did not run)"}\n')
        stream.write(f'      evaluation: {result["evaluation"]}\n')
    bad_rows = summary['bad_rows']
    if bad_rows and bad_rows['count']:
        stream.write(f'  bad CSV rows:   {bad_rows["count"]} set aside, listed in '
                     f'{bad_rows["listed_in"]}\n')
    by_span = summary.get('spans')
    if by_span:
        trained_on = ', '.join(by_span['trained_on']) or 'hash splits of its own rows'
        stream.write(f'  spans:          judged on {by_span["judged_on"]}, trained on '
                     f'{trained_on}\n')
    trained = summary['trained_model']
    if trained:
        properties = trained['properties']
        stream.write(f'  trained model:  {trained["uri"]} (seed {properties.get("seed")}, training '
                     f'data {properties.get("train_data_fingerprint", "")[:12]})\n')
        warm_start = json.loads(properties.get('warm_start') or '{}')
        if warm_start.get('warm'):
            stream.write(f'  warm start:     from {warm_start["base_model"]} (embedding rows '
                         'carried by token: ' + ', '.join(
                             f'{name} {counts["carried"]:,} of {counts["carried"] + counts["new"]:,}'
                             for name, counts in warm_start['tables'].items()) + ')\n')
        elif json.loads(properties.get('trainer_settings') or '{}').get(
                'training', {}).get('warm_start'):
            stream.write(f'  warm start:     none, trained from scratch: {warm_start["reason"]}\n')
        if trained['task_log_variance']:
            stream.write('  learned log-variances (uncertainty loss weighting): ' + '  '.join(
                f'{task} {value:.3f}' for task, value in trained['task_log_variance'].items())
                + '\n')
        for warning in trained['warnings']:
            stream.write(f'  warning: {warning}\n')
        for name, entry in vocabulary_report.notable(trained.get('vocabularies', {})).items():
            stream.write(f'  vocabulary:     {vocabulary_report.describe(name, entry)}\n')
    if summary['pushed_model']:
        stream.write(f'  pushed model:   {summary["pushed_model"]}\n')
    elif summary['already_serving']:
        stream.write(f'  pushed model:   nothing new: the trained model already serves as '
                     f'{summary["already_serving"]}\n')
    else:
        stream.write('  pushed model:   nothing pushed (not blessed)\n')
    if summary['request_example']:
        stream.write(f'  REST request:   {summary["request_example"]["curl"]}\n')
    if summary['dashboard']:
        stream.write(f'  dashboards:     {summary["dashboard"]}\n')
    stream.write(f'  metadata store: {paths["metadata"]}\n')
    stream.write(f'  run summary:    {paths["summary"]}\n')
    stream.write(f'  log:            {paths["log"]}\n')


def main(argv=None):
    args = parse_args(argv)
    output = os.path.abspath(args.output)
    paths = {
        'pipeline_root': os.path.join(output, 'pipeline_root'),
        'metadata': os.path.join(output, 'metadata.sqlite'),
        'serving': os.path.join(output, 'serving_model'),
        'summary': os.path.join(output, 'run_summary.json'),
    }
    try:
        config = config_from_flags(args)
        if not spans.by_span(config.csv_pattern):
            if args.span is not None or args.backfill:
                raise ConfigError(f'--span: csv_pattern {config.csv_pattern!r} does not name '
                                  'spans ({SPAN} or {YYYY}-{MM}-{DD}, docs/continuous-training.md)')
            # By span, the spans to check are known once the metadata store is held (_run).
            check_inputs(config)
    except ConfigError as e:
        sys.exit(f'error: {e}')
    try:
        with output_lock.hold(output):
            return _run(args, config, output, paths)
    except output_lock.OutputInUseError as e:
        sys.exit(f'error: {e}')


def _run(args, config: PipelineConfig, output: str, paths) -> int:
    """The pipeline run into `output`, which this process holds."""
    from pipeline import progress  # pylint: disable=import-outside-toplevel
    tracker = progress.setup_logging(os.path.join(output, 'logs'), args.verbose)
    paths['log'] = tracker.log_path
    print(f'Running pipeline {config.pipeline_name!r} on {config.data} into {output}')
    print(f'(full log: {tracker.log_path})')

    # Imported after the logging setup so that their import-time output lands in the log file.
    # pylint: disable=import-outside-toplevel
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline
    from pipeline.run_report import span_record, summarize
    from trainer_module.runtime import set_op_threads

    # The Trainer runs in this process, and TensorFlow takes its thread setting before its first op.
    set_op_threads(config.training.intra_op_parallelism_threads)

    span_plan, unread = None, []
    if spans.by_span(config.csv_pattern):
        record = span_record(paths['metadata'], config.pipeline_name)
        try:
            span_plan = spans.plan(config.data, config.csv_pattern, config.training.window_spans,
                                   args.span, record.blessed, args.backfill)
            # The window's spans that no run read (or whose checks failed) are read first.
            unread = [span for span in span_plan.window if span not in record.checked]
            for span in (*unread, span_plan.span):
                check_inputs(config, spans.files_of(config.csv_pattern, span))
        except ConfigError as e:
            sys.stderr.write(f'error: {e}\n')
            return 1
        print(_describe_plan(config.csv_pattern, span_plan, unread))

    def pipeline(**kwargs):
        return create_pipeline(
            config, paths['pipeline_root'], paths['serving'],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                paths['metadata']),
            beam_pipeline_args=list(LOCAL_BEAM_ARGS) + args.beam_arg,
            enable_cache=not args.no_cache, **kwargs)

    try:
        run = pipeline(spans=span_plan)
    except ConfigError as e:
        sys.stderr.write(f'error: {e}\n')
        return 1
    started = time.monotonic()
    try:
        for span in unread:
            tfx.orchestration.LocalDagRunner().run(
                pipeline(spans=spans.SpanPlan(span, ()), ingest_only=True))
        tfx.orchestration.LocalDagRunner().run(run)
    except Exception as error:  # pylint: disable=broad-except
        import logging  # pylint: disable=import-outside-toplevel
        logging.getLogger(__name__).exception('The pipeline failed')
        sys.stderr.write(f'\nerror: {tracker.component or "the pipeline"} failed: '
                         f'{type(error).__name__}: {_root_message(error)}\n'
                         f'(details in {tracker.log_path})\n')
        return 1
    summary = summarize(paths['metadata'], config)
    summary.update(paths=paths, seconds=round(time.monotonic() - started, 1))
    if span_plan is not None:
        summary['spans'] = {
            'span': span_plan.span, 'window': list(span_plan.window), 'read_first': unread,
            'judged_on': spans.name(config.csv_pattern, span_plan.span),
            'trained_on': [spans.name(config.csv_pattern, span) for span in span_plan.window]}
    with open(paths['summary'], 'w') as f:
        json.dump(summary, f, indent=2)
    _print_summary(summary, paths, time.monotonic() - started, sys.stdout)
    return 0


def _describe_plan(pattern: str, plan: 'spans.SpanPlan', unread: List[int]) -> str:
    """What a run by span reads, in a line or two."""
    if not plan.window:
        return (f'{spans.name(pattern, plan.span)}: the first span, trained and judged on hash '
                'splits of its own rows')
    trained = (spans.name(pattern, plan.window[0]) if len(plan.window) == 1 else
               f'{spans.name(pattern, plan.window[0])} to {spans.name(pattern, plan.window[-1])}')
    line = f'Judging on {spans.name(pattern, plan.span)}, training on {trained}'
    if unread:
        line += ('\n(reading first, as no run read them: '
                 + ', '.join(spans.name(pattern, span) for span in unread) + ')')
    return line


def _root_message(error: BaseException) -> str:
    """The message of the innermost cause: what actually went wrong, not the wrapper around it."""
    while True:
        inner = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if inner is None:
            return str(error)
        error = inner


if __name__ == '__main__':
    sys.exit(main())
