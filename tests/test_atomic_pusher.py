"""The atomic Pusher executor on a small SavedModel of its own."""

import os
import threading
import time

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components import atomic_pusher


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    """A Trainer's model artifact directory holding a small SavedModel."""
    model_dir = tmp_path_factory.mktemp('model')
    module = tf.Module()
    module.weights = tf.Variable(tf.range(1000, dtype=tf.float32))
    module.score = tf.function(lambda x: x * module.weights[0],
                               input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, path_utils.serving_model_path(str(model_dir)))
    return str(model_dir)


def _files(directory):
    return sorted(os.path.relpath(os.path.join(d, f), directory)
                  for d, _, files in os.walk(directory) for f in files)


def _push(model_dir, serving, out_dir, blessed=True):
    model, blessing, pushed = (standard_artifacts.Model(), standard_artifacts.ModelBlessing(),
                               standard_artifacts.PushedModel())
    model.uri, pushed.uri, blessing.uri = model_dir, str(out_dir / 'pushed'), str(out_dir)
    blessing.set_int_custom_property('blessed', int(blessed))
    atomic_pusher.Executor().Do(
        {'model': [model], 'model_blessing': [blessing]}, {'pushed_model': [pushed]},
        {'push_destination': '{"filesystem": {"baseDirectory": "%s"}}' % serving})
    return pushed


def test_a_push_is_atomic_for_a_reader_of_the_serving_directory(model_dir, tmp_path, monkeypatch):
    """A reader polling the serving directory during a (slowed-down) push sees no version
    directory until the model in it is complete."""
    source_files = _files(path_utils.serving_model_path(model_dir))
    copy = atomic_pusher.fileio.copy

    def slow_copy(*args, **kwargs):
        time.sleep(0.02)
        return copy(*args, **kwargs)

    monkeypatch.setattr(atomic_pusher.fileio, 'copy', slow_copy)
    serving = tmp_path / 'serving'
    seen, done = [], threading.Event()

    def read_serving_directory():
        while not done.is_set():
            for name in (os.listdir(serving) if serving.exists() else []):
                if name.isdigit():
                    seen.append(_files(serving / name))
            time.sleep(0.002)

    reader = threading.Thread(target=read_serving_directory)
    reader.start()
    try:
        pushed = _push(model_dir, serving, tmp_path)
        time.sleep(0.05)
    finally:
        done.set()
        reader.join()
    assert seen, 'the reader never saw the pushed version'
    assert all(files == source_files for files in seen)
    assert pushed.get_int_custom_property('pushed') == 1
    version = pushed.get_string_custom_property('pushed_destination')
    loaded = tf.saved_model.load(version)
    assert float(loaded.score(tf.constant([2.0]))[0]) == 0.0


def test_an_unblessed_model_is_not_pushed(model_dir, tmp_path):
    pushed = _push(model_dir, tmp_path / 'serving', tmp_path, blessed=False)
    assert pushed.get_int_custom_property('pushed') == 0
    assert not (tmp_path / 'serving').exists() or not os.listdir(tmp_path / 'serving')


def test_the_model_already_serving_is_not_pushed_again(model_dir, tmp_path):
    serving = tmp_path / 'serving'
    first = _push(model_dir, serving, tmp_path / 'first')
    # A push beside the pipeline's examples also wrote a request example into the version.
    with open(os.path.join(first.get_string_custom_property('pushed_destination'),
                           atomic_pusher.REQUEST_EXAMPLE_FILE), 'w') as f:
        f.write('{}')
    again = _push(model_dir, serving, tmp_path / 'again')
    assert again.get_int_custom_property('pushed') == 0
    assert again.get_string_custom_property(atomic_pusher.ALREADY_SERVING) == (
        first.get_string_custom_property('pushed_destination'))
    assert os.listdir(serving) == [os.path.basename(
        first.get_string_custom_property('pushed_destination'))]

    # Another model (one weight changed) is pushed, as a newer version.
    other = tmp_path / 'other_model'
    atomic_pusher.io_utils.copy_dir(model_dir, str(other))
    variables = os.path.join(path_utils.serving_model_path(str(other)), 'variables')
    data = next(os.path.join(variables, f) for f in os.listdir(variables) if '.data-' in f)
    with open(data, 'r+b') as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    time.sleep(1)  # versions are seconds since the epoch
    newer = _push(str(other), serving, tmp_path / 'newer')
    assert newer.get_int_custom_property('pushed') == 1
    assert len(os.listdir(serving)) == 2
