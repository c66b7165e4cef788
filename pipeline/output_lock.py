"""One run per output directory: a second run on an `--output` in use stops at once, naming the
process that holds it, instead of mixing two runs' metadata, summaries and serving versions.

The lock is an advisory `flock` on `<output>/.run.lock`, which the kernel releases when its
process ends however it ends (a kill included), so a crashed run never leaves a stale lock. The
file holds the holder's pid and command line, for the message.
"""

import contextlib
import fcntl
import os
import sys
import time

LOCK_FILE = '.run.lock'


class OutputInUseError(RuntimeError):
    """Another process is running the pipeline into the same output directory."""


@contextlib.contextmanager
def hold(output: str):
    """Holds `output`'s lock for the duration of the block, or raises OutputInUseError."""
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, LOCK_FILE)
    # Opened without truncating: the holder's details stay readable until this process holds it.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with open(path) as f:
                holder = f.read().strip() or 'another process'
            raise OutputInUseError(f'{output} is in use by a run of the pipeline ({holder}); '
                                   'wait for it to end or give another --output') from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, (f'pid {os.getpid()}, started {time.strftime("%Y-%m-%d %H:%M:%S")}'
                              f': {" ".join(sys.argv)}\n').encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock
