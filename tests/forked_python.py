"""`python -m MODULE ARG...` and `python SCRIPT ARG...` commands, each a process of its own forked
from one Python that has already imported TensorFlow, TFX, TFT, TFMA and Beam.

The executed-spec test (test_kubeflow_executed.py) runs every task of a compiled pipeline as a
process of its own, as a pod runs it: some fifty processes, each of which spent about 6 s of its
6 to 30 importing the same libraries before doing its task's work; and every whole run of the
local pipeline the tests make (helpers.run_pipeline) is a `python local_runner.py` of its own. A
`ForkServer` imports them once; each command is then a fork of it that runs MODULE as `python -m`
does (runpy as `__main__`, `sys.argv` the module's path and the arguments, the working directory
first on `sys.path`) or SCRIPT as `python SCRIPT` does (the script's folder first on `sys.path`),
with the command's working directory, its output in files of its own, its exit handlers run and
its exit status returned. The libraries' module-level state is what importing leaves, as in a
fresh process: nothing is run in the server but the imports.

The server is this file run as a script (`python forked_python.py SOCKET`), with the environment
every command gets: TensorFlow reads some of it (TF_USE_LEGACY_KERAS) when it is imported.
"""

import atexit
import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

# What every task of the compiled pipeline imports. The entrypoint modules themselves are left
# out, so that runpy runs them as `python -m` does, not over an imported copy.
PRELOADED = ('tensorflow', 'tf_keras', 'apache_beam', 'tensorflow_transform',
             'tensorflow_model_analysis', 'tfx.components', 'tfx.dsl.components.base.base_executor',
             'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_entrypoint_utils',
             'tfx.components.example_gen.driver')


class ForkServer:
    """A server process with the environment `env`; `run(command, cwd)` runs `[python, '-m',
    MODULE, ...]` (`python` this interpreter, found on env's PATH) in a fork of it and returns
    (exit status, stdout and stderr). Safe to call from several threads at once."""

    def __init__(self, env):
        self._env = env
        self._dir = tempfile.mkdtemp(prefix='forked_python_')
        self._socket_path = os.path.join(self._dir, 'server')
        # Started here, waited for at the first command: the imports overlap the caller's work.
        # What the server itself prints (the libraries' warnings) goes to a file, read if it fails.
        with open(os.path.join(self._dir, 'server.log'), 'w') as log:
            self._process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), self._socket_path], env=env,
                stdout=log, stderr=subprocess.STDOUT)
        self._started = threading.Lock()

    def _wait_until_ready(self):
        """Until the server listens (it renames its socket into place once it does)."""
        with self._started:
            while not os.path.exists(self._socket_path):
                if self._process.poll() is not None:
                    with open(os.path.join(self._dir, 'server.log')) as f:
                        raise RuntimeError(f'the fork server did not start:\n{f.read()[-6000:]}')
                time.sleep(0.05)

    def run(self, command, cwd, timeout=900):
        """`command` ([python, '-m', MODULE, ARG...]) in a fork -> (exit status, its stdout and
        stderr as one text)."""
        python = shutil.which(command[0], path=self._env.get('PATH')) if command else None
        if (len(command) < 3 or command[1] != '-m' or python is None
                or os.path.realpath(python) != os.path.realpath(sys.executable)):
            raise ValueError(f'not a `python -m MODULE` command of {sys.executable}: {command[:3]}')
        status, (text,) = self._request({'module': command[2], 'args': command[3:], 'cwd': cwd},
                                        ('output',), timeout)
        return status, text

    def run_script(self, script, args, cwd, timeout=1800):
        """`python SCRIPT ARG...` in a fork -> (exit status, stdout, stderr)."""
        status, (stdout, stderr) = self._request(
            {'script': os.path.abspath(script), 'args': list(args), 'cwd': cwd},
            ('stdout', 'stderr'), timeout)
        return status, stdout, stderr

    def _request(self, request, streams, timeout):
        """(exit status, the text written to each of `streams`: 'output' for stdout and stderr
        together, or 'stdout' and 'stderr')."""
        self._wait_until_ready()
        paths = [tempfile.NamedTemporaryFile(dir=self._dir, suffix='.log', delete=False).name
                 for _ in streams]
        request = dict(request, **dict(zip(streams, paths)))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            connection.connect(self._socket_path)
            connection.sendall(json.dumps(request).encode() + b'\n')
            status = connection.makefile().readline()
        texts = []
        for path in paths:
            with open(path, errors='replace') as f:
                texts.append(f.read())
            os.remove(path)
        # A fork that died without a word (killed, or crashed in native code) answers nothing.
        return (int(status) if status else -1), texts

    def close(self):
        self._process.kill()
        self._process.wait()
        shutil.rmtree(self._dir)


def _redirect(path, fd):
    """File descriptor `fd` (1, 2) writes into the file at `path` from now on."""
    target = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.dup2(target, fd)
    os.close(target)


def _run_command(request):
    """In the fork: the request's module as `python -m` runs it, or its script as `python`
    does; returns its exit status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the server's setting; the task waits on its own
    os.chdir(request['cwd'])
    if 'output' in request:
        _redirect(request['output'], 1)
        os.dup2(1, 2)
    else:
        _redirect(request['stdout'], 1)
        _redirect(request['stderr'], 2)
    try:
        if 'script' in request:
            sys.path[0] = os.path.dirname(request['script'])
            sys.argv = [request['script'], *request['args']]
            runpy.run_path(request['script'], run_name='__main__')
        else:
            sys.path[0] = request['cwd']
            sys.argv = [request['module'], *request['args']]
            runpy.run_module(request['module'], run_name='__main__', alter_sys=True)
        status = 0
    except SystemExit as exit_:
        code = exit_.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        status = 1
    atexit._run_exitfuncs()  # pylint: disable=protected-access
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def _serve(socket_path):
    for module in PRELOADED:
        __import__(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks are reaped without a wait
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path + '.binding')
    server.listen(64)
    os.rename(socket_path + '.binding', socket_path)
    while True:
        connection, _ = server.accept()
        request = json.loads(connection.makefile().readline())
        if os.fork() == 0:
            server.close()
            status = 1
            try:
                status = _run_command(request)
            finally:
                connection.sendall(f'{status}\n'.encode())
                os._exit(status)
        connection.close()


if __name__ == '__main__':
    del sys.path[0]  # this file's folder: the libraries are imported from the environment alone
    _serve(sys.argv[1])
