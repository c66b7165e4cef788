"""What several test files share, other than fixtures (those are in conftest.py): the arguments of
the small runs, a `python local_runner.py` run and what it left, CSV rows every reader must
refuse, what the property tests of the CSV readers share, and how tests read a dashboard page's
tables.

Tests import it as `helpers`: pytest puts this directory first on sys.path (tests/ is not a
package), in every pytest-xdist worker too.
"""

import atexit
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys

from hypothesis import HealthCheck, settings

from pipeline.config import PROJECT_DIR

from forked_python import ForkServer

# The small data comes as a train and an eval directory, so that a run can change what the
# candidate learns from while the Evaluators judge every model on the same rows.
SPLIT_DATA = ['--set', 'csv_pattern=train/*.csv', '--set', 'eval_csv_pattern=eval/*.csv']
MULTI_PROCESSING = ['--beam-arg=--direct_running_mode=multi_processing',
                    '--beam-arg=--direct_num_workers=2']
# Small data: 6 passes of 64 (150 steps), evaluated 4 times a pass; early stopping keeps the
# weights from before the model overfits.
SMALL_TRAINING = ['--epochs', '6', '--batch-size', '64',
                  '--set', 'training.log_every_steps=30']

# Five bad rows of the bundled data's layout, one per kind of problem. The line numbers are theirs
# after a header and two good rows (as test_csv_example_gen.py writes them).
BAD = ('u3,i3,c3,s3,city3,ios,3,F,25-34,12.5,4,1,4.2,10,1,0,extra\n'        # 4: too many fields
       'u4,i4,c4,s4,city4,ios,3,F,25-34,12.5\n'                              # 5: too few
       'u5,i5,c5,s5,city5,ios,3,F,25-34,twelve,4,1,4.2,10,1,0\n'             # 6: not a number
       'u6,i6,"c6,s6,city6,ios,3,F,25-34,12.5,4,1,4.2,10,1,0\n'             # 7: unclosed quote
       'u7,i7,c7,s7,city7,ios,3.5,F,25-34,12.5,4,1,4.2,10,1,0\n')            # 8: hour not an int

# Derandomized: the same examples on every run, so that CI cannot fail on one machine's draw and
# pass on the next (to explore further, run with derandomize=False and more examples).
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])
# The CSV line rules (components/csv_lines.py) tested with a small line limit and small reads
# (patched in), so that over-long lines and lines cut by a read are common.
LINE_LIMIT = 256
READ_SIZES = (1, 2, 3, 7, 64, 1000, 1 << 20)


class ShortReads(io.RawIOBase):
    """A binary stream over `data` that gives at most `most` bytes a read, as a network stream
    may."""

    def __init__(self, data: bytes, most: int):
        super().__init__()
        self._data, self._at, self._most = data, 0, most

    def readable(self):
        return True

    def read(self, size=-1):
        size = self._most if size < 0 else min(size, self._most)
        chunk = self._data[self._at:self._at + size]
        self._at += len(chunk)
        return chunk


_FORK_SERVER = []


def _forks() -> ForkServer:
    """This process's fork server (tests/forked_python.py), started at the first run: each run is a
    fork of a Python that has imported TensorFlow, TFX and Beam, which saves a run the 6 s a new
    interpreter spends importing them. Keras 2, as in the pipeline's image (Dockerfile)."""
    if not _FORK_SERVER:
        _FORK_SERVER.append(ForkServer({**os.environ, 'TF_USE_LEGACY_KERAS': '1'}))
        atexit.register(_FORK_SERVER[0].close)
    return _FORK_SERVER[0]


class PipelineRun:
    """One `python local_runner.py --output OUTPUT ARGS` process (a fork of `_forks()`): its exit
    code, terminal output, run summary (run_summary.json, None for a run that failed) and the
    states of its nodes."""

    def __init__(self, output, args):
        self.output = str(output)
        self.args = list(args)
        # What the serving directory held before the run.
        serving = os.path.join(self.output, 'serving_model')
        self.serving_before = sorted(os.listdir(serving)) if os.path.isdir(serving) else []
        self.returncode, self.stdout, self.stderr = _forks().run_script(
            os.path.join(PROJECT_DIR, 'local_runner.py'), ['--output', self.output, *args],
            cwd=PROJECT_DIR)
        summary_path = os.path.join(self.output, 'run_summary.json')
        metadata = os.path.join(self.output, 'metadata.sqlite')
        self.summary = None
        self._states = {}
        if self.returncode == 0 and os.path.exists(summary_path):
            with open(summary_path) as f:
                self.summary = json.load(f)
            self._states = {node: run['state'] for node, run in self.summary['nodes'].items()}
        elif os.path.exists(metadata):
            # A failed run writes no summary: what it ran is read back now, before a later run
            # into the same output is the newest in the store.
            self._states = _newest_run_states(metadata)

    def check(self):
        """Asserts that the run succeeded, and that the report it printed at its end is
        local_runner's report of its run_summary.json: the facts tests read in the summary are
        the ones a person reads on the terminal. Returns the run."""
        assert self.returncode == 0, f'stdout:\n{self.stdout}\nstderr:\n{self.stderr}'
        assert self.summary is not None, f'no run summary in {self.output}'
        # Imported here: local_runner.py is a script at the project root, which only the tests of
        # whole runs need on sys.path.
        import local_runner  # pylint: disable=import-outside-toplevel
        report = io.StringIO()
        # pylint: disable-next=protected-access
        local_runner._print_summary(self.summary, self.summary['paths'], self.summary['seconds'],
                                    report)
        assert _after_its_duration(self.stdout) == _after_its_duration(report.getvalue()), \
            self.stdout
        return self

    def states(self):
        """{node id: execution state (COMPLETE, CACHED, FAILED, ...)} of this run's nodes."""
        return dict(self._states)


def _after_its_duration(stdout: str) -> str:
    """The end-of-run report without its first line, the one line that depends on a clock."""
    return stdout.split('\nPipeline finished in ', 1)[-1].split('\n', 1)[-1]


def _newest_run_states(metadata_path: str):
    """{node id: state} of the newest run in a store of one pipeline's runs."""
    # Imported here: conftest.py imports this module in every session, and ML Metadata and the
    # components load only where a test reads a store.
    from pipeline.run_report import latest_run, sqlite_store  # pylint: disable=import-outside-toplevel
    store = sqlite_store(metadata_path)
    pipelines = [context.name for context in store.get_contexts_by_type('pipeline')]
    assert len(pipelines) == 1, pipelines
    return {node: run.state for node, run in latest_run(store, pipelines[0]).items()}


def run_pipeline(output, *args) -> PipelineRun:
    """`python local_runner.py --output OUTPUT ARGS`, run to its end."""
    return PipelineRun(output, args)


def kill_when(output, args, seen_line, when=None):
    """Starts local_runner.py and kills it, Beam workers and all, once it prints a line that
    `seen_line` accepts, then (with `when`) as soon as `when()` is true. Returns its output."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), '--output', output, *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=PROJECT_DIR,
        start_new_session=True)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if seen_line(line):
            while when is not None and not when() and process.poll() is None:
                pass  # no sleep: the moment to kill may last a few milliseconds
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, ''.join(seen)
    return ''.join(seen)


def fork_output(run, directory):
    """A new output directory whose metadata store is a copy of `run`'s: a run there sees the
    earlier runs (their cache, blessed model and statistics) and changes nothing of theirs."""
    os.makedirs(directory, exist_ok=True)
    shutil.copy(os.path.join(run.output, 'metadata.sqlite'), directory)
    return str(directory)


def overall_row(page_html, metric):
    """The cells of `metric`'s row in a task page's overall table."""
    table = re.search(r'<table id="overall">(.*?)</table>', page_html, re.S).group(1)
    return re.search(rf'<tr><td class="name">{metric}(?: <strong>\(gated\)</strong>)?</td>(.*?)</tr>',
                     table, re.S).group(1)


def history_rows(page_html):
    """The rows (after their first cell's opening tag) of a task page's History table."""
    table = re.search(r'<table id="history-table">(.*?)</table>', page_html, re.S).group(1)
    return re.findall(r'<tr><td>(.*?)</tr>', table, re.S)


def check_grouped_metrics(batches, eval_config, check):
    """Runs batched extracts (as TFMA's extractors pass them on after the model) through the
    Evaluators' path, `SliceGroups` then TFMA's evaluator with the combiners for groups, and
    calls `check([(slice key, {metric key: value})])` on the metrics within the Beam pipeline."""
    # pylint: disable=import-outside-toplevel
    import apache_beam as beam
    import tensorflow_model_analysis as tfma
    from apache_beam.testing import util as beam_util

    from compat import tfma_combiners
    from components import grouped_evaluation
    with beam.Pipeline() as pipeline:
        extracts = (pipeline | beam.Create(batches, reshuffle=False)
                    | grouped_evaluation.SliceGroups(eval_config).ptransform)
        with tfma_combiners.tfma_combiners_for_groups():
            metrics = (extracts | tfma.evaluators.MetricsPlotsAndValidationsEvaluator(
                eval_config=eval_config).ptransform)['metrics']
        beam_util.assert_that(metrics | beam.combiners.ToList(), check)
