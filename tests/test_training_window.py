"""TrainingWindow and BackfillCheck (components/training_window.py) on TFX's own artifacts: the
span store records each checked span, a run trains on the window's spans as they were read and
judges on every row of its own, and a missing window span or an older span is refused, named."""

import json
import os

import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.span_window import SPAN
from components.training_window import (
    BACKFILL_KEY,
    EXAMPLES_KEY,
    JUDGED_KEY,
    STORE_KEY,
    TRAINING_KEY,
    WINDOW_PROPERTY,
    WINDOW_SPANS_KEY,
    BackfillCheckExecutor,
    Executor,
    recorded_spans,
)

SPLITS = ('train', 'validation', 'eval')


def _examples(tmp_path, span, rows=(3, 1, 2)):
    """Examples of `span` whose splits hold `rows` records, each naming its span and split."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / f'read-{span}-{len(os.listdir(tmp_path))}')
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples.set_int_custom_property(SPAN, span)
    for split, count in zip(SPLITS, rows):
        os.makedirs(os.path.join(examples.uri, f'Split-{split}'))
        with tf.io.TFRecordWriter(os.path.join(examples.uri, f'Split-{split}', 'data.gz'),
                                  'GZIP') as writer:
            for _ in range(count):
                writer.write(f'{span}/{split}'.encode())
    return examples


def _records(artifact, split):
    directory = os.path.join(artifact.uri, f'Split-{split}')
    return sorted(record.numpy().decode() for name in sorted(os.listdir(directory))
                  for record in tf.data.TFRecordDataset(os.path.join(directory, name), 'GZIP'))


def _window(tmp_path, examples, window_spans=2):
    training, judged = standard_artifacts.Examples(), standard_artifacts.Examples()
    training.uri, judged.uri = (str(tmp_path / f'{name}-{os.path.basename(examples.uri)}')
                                for name in ('training', 'judged'))
    Executor().Do({EXAMPLES_KEY: [examples]}, {TRAINING_KEY: [training], JUDGED_KEY: [judged]},
                  {STORE_KEY: str(tmp_path / 'store'), WINDOW_SPANS_KEY: window_spans})
    return training, judged


@pytest.fixture
def data(tmp_path):
    (tmp_path / 'read').mkdir()
    return tmp_path


def test_a_first_span_trains_and_judges_on_its_own_splits(data):
    training, judged = _window(data, _examples(data / 'read', 1))
    assert _records(training, 'train') == ['1/train'] * 3
    assert _records(training, 'validation') == ['1/validation']
    assert _records(judged, 'eval') == ['1/eval'] * 2
    assert artifact_utils.decode_split_names(training.split_names) == ['train', 'validation']
    assert artifact_utils.decode_split_names(judged.split_names) == ['eval']
    assert json.loads(training.get_string_custom_property(WINDOW_PROPERTY)) == [1]
    assert sorted(recorded_spans(str(data / 'store'))) == [1]


def test_a_span_trains_on_its_window_as_read_and_judges_on_all_its_rows(data):
    read = data / 'read'
    _window(data, _examples(read, 1))
    _window(data, _examples(read, 2, rows=(5, 5, 5)))
    span_2 = _examples(read, 2)
    _window(data, span_2)  # span 2 read again: the newest read replaces the record
    assert recorded_spans(str(data / 'store'))[2]['uri'] == span_2.uri
    _window(data, _examples(read, 3))
    training, judged = _window(data, _examples(read, 4), window_spans=2)
    assert json.loads(training.get_string_custom_property(WINDOW_PROPERTY)) == [2, 3]
    assert _records(training, 'train') == ['2/train'] * 3 + ['3/train'] * 3
    assert _records(training, 'validation') == ['2/validation', '3/validation']
    assert _records(judged, 'eval') == ['4/eval'] * 2 + ['4/train'] * 3 + ['4/validation']
    assert judged.get_int_custom_property(SPAN) == 4


def test_a_window_span_no_run_recorded_is_refused_naming_it(data):
    read = data / 'read'
    _window(data, _examples(read, 1))
    with pytest.raises(ValueError, match=r'span 2 of the training window \(span 2 to span 3\) '
                                         r'was never read and checked by a run'):
        _window(data, _examples(read, 4))
    assert sorted(recorded_spans(str(data / 'store'))) == [1]  # nothing recorded by the refusal


def test_an_older_span_is_refused_unless_a_backfill_is_meant(data):
    read = data / 'read'
    for span in (1, 2):
        _window(data, _examples(read, span))
    store = {STORE_KEY: str(data / 'store')}
    with pytest.raises(ValueError, match='span 1 is older than span 2, which an earlier run read '
                                         'and checked'):
        BackfillCheckExecutor().Do({EXAMPLES_KEY: [_examples(read, 1)]}, {},
                                   {**store, BACKFILL_KEY: 0})
    BackfillCheckExecutor().Do({EXAMPLES_KEY: [_examples(read, 1)]}, {}, {**store, BACKFILL_KEY: 1})
    for span in (2, 3):  # the same span again, or a newer one
        BackfillCheckExecutor().Do({EXAMPLES_KEY: [_examples(read, span)]}, {},
                                   {**store, BACKFILL_KEY: 0})


def test_examples_without_a_span_are_refused_naming_them(data):
    examples = _examples(data / 'read', 1)
    examples.mlmd_artifact.custom_properties.pop(SPAN)
    with pytest.raises(ValueError, match=f'{examples.uri}: the examples have no span'):
        _window(data, examples)
