"""local_runner.py refuses bad arguments at once, with one line naming what is wrong."""

import os
import subprocess
import sys

import pytest

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
