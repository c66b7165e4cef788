"""local_runner.py: bad arguments refused at once, with one line naming what is wrong; one run per
output; the report printed at the end of a run, from its run summary."""

import io
import os
import subprocess
import sys

import pytest

import local_runner
from pipeline import output_lock
from pipeline.config import PROJECT_DIR


def _run(*args):
    return subprocess.run([sys.executable, os.path.join(PROJECT_DIR, 'local_runner.py'), *args],
                          capture_output=True, text=True, timeout=120)


def _with_empty_csv(directory):
    (directory / 'a.csv').write_text('')
    return str(directory)


def _with_header_only(directory):
    (directory / 'a.csv').write_text('user_id,click\n\n')
    return str(directory)


def _without_users(directory):
    (directory / 'a.csv').write_text('item_id,click\ni1,0\n')
    return str(directory)


@pytest.mark.parametrize('make_args, message', [
    (lambda tmp: ['--data', str(tmp / 'missing')], 'is not a directory'),
    (lambda tmp: ['--data', str(tmp)], 'no file matches *.csv in'),
    (lambda tmp: ['--data', _with_empty_csv(tmp)], 'a.csv is empty'),
    (lambda tmp: ['--data', _with_header_only(tmp)], 'a.csv has a header but no rows'),
    (lambda tmp: ['--schema', str(tmp / 'nope.pbtxt')], 'nope.pbtxt does not exist'),
    (lambda tmp: ['--data', _without_users(tmp)],
     "evaluation.group_by: 'user_id' is not a column of "),
    (lambda tmp: ['--set', 'model.num_experts=1'], 'model.num_experts: must be at least 2'),
    (lambda tmp: ['--set', 'model.experts=3'], 'config.model.experts: unknown key'),
])
def test_bad_arguments_fail_fast_with_one_line(tmp_path, monkeypatch, make_args, message):
    """local_runner.main in this process: the exit it asks for, before anything is written."""
    def run_anyway(*_):
        raise AssertionError('the arguments were accepted')
    monkeypatch.setattr(local_runner, '_run', run_anyway)
    with pytest.raises(SystemExit) as exit_:
        local_runner.main(['--output', str(tmp_path / 'out'), *make_args(tmp_path)])
    error = exit_.value.code
    assert isinstance(error, str) and error.startswith('error: ') and message in error, error
    assert '\n' not in error
    assert not (tmp_path / 'out').exists()


def test_the_command_exits_non_zero_with_one_line_naming_the_key(tmp_path):
    """The command line itself, once: the refusal above, as a person sees it."""
    result = _run('--output', str(tmp_path / 'out'), '--set', 'model.experts=3')
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: config.model.experts: unknown key'), \
        result.stderr
    assert not (tmp_path / 'out').exists()


def test_a_second_run_on_an_output_in_use_stops_at_once_naming_the_holder(tmp_path):
    """Two real processes: one holds the output (as a running pipeline does), the other is a
    local_runner.py on the same output, which stops before writing anything there."""
    output = tmp_path / 'out'
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import sys, time; from pipeline import output_lock\n'
         f'with output_lock.hold({str(output)!r}):\n'
         '    print("held", flush=True); time.sleep(120)'],
        stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR)
    try:
        assert holder.stdout.readline().strip() == 'held'
        result = _run('--output', str(output))
        assert result.returncode != 0
        assert (f'error: {output} is in use by a run of the pipeline (pid {holder.pid}, started '
                in result.stderr), result.stderr
        assert sorted(os.listdir(output)) == [output_lock.LOCK_FILE]
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the killed holder's lock: the output can be held again.
    with output_lock.hold(str(output)):
        with open(output / output_lock.LOCK_FILE) as f:
            assert f.read().startswith(f'pid {os.getpid()}, ')


PATHS = {'pipeline_root': '/out/pipeline_root', 'metadata': '/out/metadata.sqlite',
         'serving': '/out/serving_model', 'summary': '/out/run_summary.json',
         'log': '/out/logs/run.log'}
REFUSED = {'blessed': False, 'missing_thresholds': False, 'failures': [{
    'slice': 'Overall', 'metric': 'auc', 'is_change': False, 'value': 0.6123456,
    'threshold': {'valueThreshold': {'lowerBound': 0.99}}, 'message': ''}]}


def _summary(**changes):
    """A run summary as pipeline.run_report.summarize makes it (after a JSON round trip)."""
    summary = {
        'tasks': {
            'ctr': {'evaluation': '/out/pipeline_root/Evaluator.ctr/evaluation/9',
                    'metrics': {'auc': 0.612345, 'mean_label': 0.2, 'example_count': 400.0},
                    'verdict': REFUSED},
            'ctcvr': {'evaluation': '/out/pipeline_root/Evaluator.ctcvr/evaluation/10',
                      'metrics': {'auc': 0.81, 'gauc': 0.64, 'gauc_groups': 31.0,
                                  'gauc_coverage': 0.2, 'example_count': 400.0},
                      'verdict': {'blessed': True, 'failures': [], 'missing_thresholds': False,
                                  'gate': {'metric': 'gauc', 'calibration': None}}},
            'minutes': {'evaluation': '/out/pipeline_root/Evaluator.minutes/evaluation/11',
                        'metrics': {'mean_squared_error': 2.5, 'example_count': 400.0},
                        'verdict': None}},
        'bad_rows': {'count': 5, 'listed_in': '/out/pipeline_root/CsvExampleGen/BadRows/1'},
        'trained_model': {'uri': '/out/pipeline_root/Trainer/model/7',
                          'properties': {'seed': 1024,
                                         'train_data_fingerprint': '0123456789ab' * 5},
                          'task_log_variance': {'ctr': -0.5, 'ctcvr': 0.25},
                          'warnings': ['expert 2 is used by no gate']},
        'pushed_model': '/out/serving_model/1700000000',
        'already_serving': None,
        'request_example': {'path': '/out/serving_model/1700000000/request.json',
                            'curl': 'curl -d @/out/serving_model/1700000000/request.json '
                                    'http://localhost:8501/v1/models/mmoe:predict'},
        'dashboard': '/out/pipeline_root/Dashboard/dashboard/12/index.html',
        'paths': PATHS}
    summary.update(changes)
    return summary


def _report(summary, seconds=42.0):
    stream = io.StringIO()
    local_runner._print_summary(summary, PATHS, seconds, stream)  # pylint: disable=protected-access
    return stream.getvalue()


def test_the_report_gives_each_task_its_verdict_and_where_everything_is():
    """The gated metric by name, then the others (GAUC beside AUC, with its groups); counts as
    integers; a refused task with its failing metric, value and bound; a task the gate
    did not judge; the bad rows, the trained model with what decided it, its learned
    log-variances and warnings; the pushed model and the request that scores with it."""
    assert _report(_summary()).splitlines() == [
        '',
        'Pipeline finished in 42 s.',
        '  ctr: auc 0.6123 (gated)  examples 400  -> refused: auc = 0.6123 on Overall '
        '(bound {"valueThreshold": {"lowerBound": 0.99}})',
        '      evaluation: /out/pipeline_root/Evaluator.ctr/evaluation/9',
        '  ctcvr: gauc 0.64 (gated)  auc 0.81  groups 31  examples 400  -> blessed',
        '      evaluation: /out/pipeline_root/Evaluator.ctcvr/evaluation/10',
        '  minutes: mean_squared_error 2.5 (gated)  examples 400  -> not judged '
        '(the gate did not run)',
        '      evaluation: /out/pipeline_root/Evaluator.minutes/evaluation/11',
        '  bad CSV rows:   5 set aside, listed in /out/pipeline_root/CsvExampleGen/BadRows/1',
        '  trained model:  /out/pipeline_root/Trainer/model/7 (seed 1024, training data '
        '0123456789ab)',
        '  learned log-variances (uncertainty loss weighting): ctr -0.500  ctcvr 0.250',
        '  warning: expert 2 is used by no gate',
        '  pushed model:   /out/serving_model/1700000000',
        '  REST request:   curl -d @/out/serving_model/1700000000/request.json '
        'http://localhost:8501/v1/models/mmoe:predict',
        '  dashboards:     /out/pipeline_root/Dashboard/dashboard/12/index.html',
        '  metadata store: /out/metadata.sqlite',
        '  run summary:    /out/run_summary.json',
        '  log:            /out/logs/run.log']


def test_the_report_says_why_nothing_was_pushed():
    nothing_new = _report(_summary(pushed_model=None,
                                   already_serving='/out/serving_model/1700000000'))
    assert ('  pushed model:   nothing new: the trained model already serves as '
            '/out/serving_model/1700000000\n') in nothing_new
    refused = _report(_summary(pushed_model=None, request_example=None))
    assert '  pushed model:   nothing pushed (not blessed)\n' in refused
    assert 'REST request' not in refused


def test_the_report_leaves_out_what_the_run_did_not_make():
    report = _report(_summary(bad_rows={'count': 0, 'listed_in': None}, trained_model=None,
                              dashboard=None), seconds=150)
    assert 'Pipeline finished in 2.5 min.' in report
    for absent in ('bad CSV rows', 'trained model', 'log-variances', 'warning', 'dashboards'):
        assert absent not in report, absent
