"""local_runner.py refuses bad arguments at once, with one line naming what is wrong."""

import os
import subprocess
import sys

import pytest

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


@pytest.mark.parametrize('make_args, message', [
    (lambda tmp: ['--data', str(tmp / 'missing')], 'is not a directory'),
    (lambda tmp: ['--data', str(tmp)], 'no file matches *.csv in'),
    (lambda tmp: ['--data', _with_empty_csv(tmp)], 'a.csv is empty'),
    (lambda tmp: ['--data', _with_header_only(tmp)], 'a.csv has a header but no rows'),
    (lambda tmp: ['--schema', str(tmp / 'nope.pbtxt')], 'nope.pbtxt does not exist'),
    (lambda tmp: ['--set', 'model.num_experts=1'], 'model.num_experts: must be at least 2'),
    (lambda tmp: ['--set', 'model.experts=3'], 'config.model.experts: unknown key'),
])
def test_bad_arguments_fail_fast_with_one_line(tmp_path, make_args, message):
    result = _run('--output', str(tmp_path / 'out'), *make_args(tmp_path))
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
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
