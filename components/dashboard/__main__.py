"""The command that writes the dashboards of a past run (`components.dashboard`'s docstring):

    python -m components.dashboard --pipeline-root outputs/pipeline_root [--run latest] [--out DIR]
"""

import argparse
import os
import sys

import tensorflow as tf

from components.blessing_gate import COMPONENT_ID as GATE_ID
from components.blessing_gate import VERDICT_FILE
from components.dashboard.history import gate_blessings, gate_runs, history_entries
from components.dashboard.writer import write_dashboards


def main(argv=None):
    """Writes the pages of the run `--run` under `--pipeline-root` into `--out` and prints the
    index page's path; exits with an error naming the runs there for a run that is not."""
    parser = argparse.ArgumentParser(
        description='Writes the evaluation dashboards of a past pipeline run.')
    parser.add_argument('--pipeline-root', required=True,
                        help='the pipeline root of the runs (local_runner: <output>/pipeline_root)')
    parser.add_argument('--run', default='latest',
                        help="'latest', or a BlessingGate execution id (a directory under "
                             '<pipeline root>/BlessingGate/blessing/)')
    parser.add_argument('--out', help='where to write the pages '
                                      '(default: <pipeline root>/dashboards/run-<run>)')
    parser.add_argument('--metadata', help='the ML Metadata store (SQLite) of the runs, for the '
                                           'History (default: metadata.sqlite beside the pipeline '
                                           'root, as local_runner writes it, if there)')
    args = parser.parse_args(argv)
    runs = gate_runs(args.pipeline_root)
    if not runs:
        sys.exit(f'error: no run with a gate verdict under {args.pipeline_root}')
    run = runs[-1] if args.run == 'latest' else args.run
    if run not in runs:
        sys.exit(f'error: no run {run!r} under {args.pipeline_root}; runs: {", ".join(runs)}')
    out = args.out or os.path.join(args.pipeline_root, 'dashboards', f'run-{run}')
    metadata = args.metadata or os.path.join(os.path.dirname(os.path.abspath(
        args.pipeline_root.rstrip('/'))), 'metadata.sqlite')
    history = None
    if tf.io.gfile.exists(metadata):
        blessings = gate_blessings(metadata)
        this = next((b.id for b in blessings if os.path.basename(b.uri.rstrip('/')) == run), None)
        history = history_entries([b for b in blessings if this is None or b.id <= this])
    index = write_dashboards(
        os.path.join(args.pipeline_root, GATE_ID, 'blessing', run, VERDICT_FILE), out, run, history)
    print(index)


if __name__ == '__main__':
    main()
