"""What a person sees during a local run: a line per component as it starts and ends, with its
duration, and the Trainer's progress. Everything TensorFlow, Beam and TFX log goes to a log file.
"""

import logging
import os
import sys
import time

from trainer_module.settings import PROGRESS_LOGGER


class ComponentProgress(logging.Handler):
    """Turns the LocalDagRunner's 'Component X is running/finished' records into timed lines on
    `stream`, and passes our own progress records through."""

    def __init__(self, stream, log_path):
        super().__init__(logging.INFO)
        self.stream = stream
        self.log_path = log_path
        self.component = None
        self.started = 0.0
        self.cached = False
        self.durations = {}

    def _print(self, text):
        self.stream.write(text + '\n')
        self.stream.flush()

    def emit(self, record):
        message = record.getMessage()
        if message.startswith('Component ') and message.endswith(' is running.'):
            self.component = message[len('Component '):-len(' is running.')]
            self.started = time.monotonic()
            self.cached = False
            self._print(f'[{time.strftime("%H:%M:%S")}] {self.component} ...')
        elif message.startswith('Component ') and message.endswith(' is finished.'):
            seconds = time.monotonic() - self.started
            self.durations[self.component] = seconds
            how = 'reused from cache' if self.cached else 'done'
            self._print(f'[{time.strftime("%H:%M:%S")}] {self.component} {how} in {seconds:.1f} s')
        elif message.startswith('A cached execution '):
            self.cached = True
        elif record.name == PROGRESS_LOGGER:
            self._print(f'    {message}')


def setup_logging(log_dir: str, verbose: bool) -> ComponentProgress:
    """Sends all logging to `log_dir/run-<time>-<pid>.log`, and to the terminal only progress lines, or
    everything with `verbose`. Returns the progress handler; its `log_path` is the log file.

    Without `verbose`, the process's stderr (where TensorFlow's C++ code logs) is the log file too, and
    `sys.stderr` is a copy of the terminal's stderr for our own error messages.
    """
    os.makedirs(log_dir, exist_ok=True)
    # The pid too: two runs started in the same second must not share a log.
    log_path = os.path.join(log_dir, time.strftime('run-%Y%m%d-%H%M%S') + f'-{os.getpid()}.log')
    log_file = open(log_path, 'a', buffering=1)
    terminal = sys.stdout
    if not verbose:
        terminal_stderr = os.fdopen(os.dup(2), 'w', buffering=1)
        os.dup2(log_file.fileno(), 2)
        sys.stderr = terminal_stderr
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')

    # absl (TFX's logger) installs its own handler on the root logger when imported; replace it.
    import absl.logging  # pylint: disable=import-outside-toplevel
    absl.logging.get_absl_handler().setLevel(logging.CRITICAL + 1)
    # Some libraries lower absl's verbosity mid-run, which would hide TFX's component records from the
    # log file and from the progress lines: keep it at INFO for this process.
    absl_logger = logging.getLogger('absl')
    absl_logger.setLevel(logging.INFO)
    absl_logger.setLevel = lambda level: None  # type: ignore[method-assign]
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.INFO)
    file_handler = logging.StreamHandler(log_file)
    file_handler.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s'))
    root.addHandler(file_handler)
    logging.captureWarnings(True)
    progress = ComponentProgress(terminal, log_path)
    root.addHandler(progress)
    if verbose:
        root.addHandler(logging.StreamHandler(sys.stderr))
    return progress
