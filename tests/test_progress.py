"""pipeline/progress.py: the lines a person sees during a run, from the LocalDagRunner's records and
our own progress records. (The lines of a real run: test_pipeline_e2e.py.)"""

import io
import logging
import re

from pipeline.progress import ComponentProgress
from trainer_module.settings import PROGRESS_LOGGER


def _lines(messages):
    """What ComponentProgress prints for records of (logger name, message)."""
    stream = io.StringIO()
    progress = ComponentProgress(stream, '/out/logs/run.log')
    for name, message in messages:
        progress.emit(logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None))
    return progress, stream.getvalue().splitlines()


def test_a_line_as_each_component_starts_and_ends_with_its_duration():
    progress, lines = _lines([
        ('absl', 'Component Transform is running.'),
        ('absl', 'Component Transform is finished.'),
        ('absl', 'Component Trainer is running.'),
        ('absl', 'A cached execution 7 is used.'),
        ('absl', 'Component Trainer is finished.')])
    # A clock time, the component, and for its end how it ended and how long it took.
    assert [re.sub(r'\d', '9', line) for line in lines] == [
        '[99:99:99] Transform ...', '[99:99:99] Transform done in 9.9 s',
        '[99:99:99] Trainer ...', '[99:99:99] Trainer reused from cache in 9.9 s']
    assert progress.component == 'Trainer'  # what an error message names
    assert set(progress.durations) == {'Transform', 'Trainer'}


def test_our_progress_records_pass_through_and_other_logging_does_not():
    _, lines = _lines([(PROGRESS_LOGGER, 'Trainer step 30/150  loss 0.52'),
                       ('absl', 'Running executor for Trainer'),
                       ('tensorflow', 'Assets written to: /tmp/x')])
    assert lines == ['    Trainer step 30/150  loss 0.52']
