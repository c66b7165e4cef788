"""The atomic Pusher executor on a small SavedModel of its own."""

import os
import subprocess
import sys

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
    """A reader of the serving directory, looking after every file the push writes (so at every
    state a model server could see, without depending on timing), sees no version directory until
    the model in it is complete."""
    source_files = _files(path_utils.serving_model_path(model_dir))
    serving = tmp_path / 'serving'
    seen, copies = [], []

    def read_serving_directory():
        for name in (os.listdir(serving) if serving.exists() else []):
            if name.isdigit():
                seen.append(_files(serving / name))

    copy = atomic_pusher.fileio.copy

    def copy_then_read(*args, **kwargs):
        copies.append(args[0])
        read_serving_directory()
        copy(*args, **kwargs)
        read_serving_directory()

    monkeypatch.setattr(atomic_pusher.fileio, 'copy', copy_then_read)
    pushed = _push(model_dir, serving, tmp_path)
    read_serving_directory()
    assert len(copies) >= len(source_files)  # every file of the push was watched
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

    # Another model is pushed, as a newer version, in the same second or not.
    newer = _push(_other_model(model_dir, tmp_path / 'other_model'), serving, tmp_path / 'newer')
    assert newer.get_int_custom_property('pushed') == 1
    assert len(os.listdir(serving)) == 2


def _other_model(model_dir, directory, flip=1):
    """A copy of the model at `model_dir` with one weight's last byte changed (xor `flip`)."""
    atomic_pusher.io_utils.copy_dir(model_dir, str(directory))
    variables = os.path.join(path_utils.serving_model_path(str(directory)), 'variables')
    data = next(os.path.join(variables, f) for f in os.listdir(variables) if '.data-' in f)
    with open(data, 'r+b') as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ flip]))
    return str(directory)


def _versions(serving):
    return sorted((name for name in os.listdir(serving) if name.isdigit()), key=int)


def test_versions_are_unique_and_increasing_within_a_second_and_when_the_clock_steps_back(
        model_dir, tmp_path, monkeypatch):
    serving = tmp_path / 'serving'
    now = [1_700_000_000.2]
    monkeypatch.setattr(atomic_pusher.time, 'time', lambda: now[0])
    destinations = []
    for index, step in enumerate([0, 0.5, -3600]):  # the same second twice, then an hour back
        now[0] += step
        pushed = _push(_other_model(model_dir, tmp_path / f'model{index}', flip=index + 1),
                       serving, tmp_path / f'out{index}')
        assert pushed.get_int_custom_property('pushed') == 1
        destinations.append(pushed.get_string_custom_property('pushed_destination'))
    assert _versions(serving) == ['1700000000', '1700000001', '1700000002']
    assert [os.path.basename(d) for d in destinations] == _versions(serving)
    # Each version holds the model pushed as it, and nothing is left staged.
    for index, destination in enumerate(destinations):
        assert atomic_pusher._same_files(  # pylint: disable=protected-access
            path_utils.serving_model_path(str(tmp_path / f'model{index}')), destination)
    assert sorted(os.listdir(serving)) == _versions(serving)


def test_a_version_taken_by_another_push_meanwhile_is_an_error_not_a_skip(
        model_dir, tmp_path, monkeypatch):
    serving = tmp_path / 'serving'
    monkeypatch.setattr(atomic_pusher.time, 'time', lambda: 1_700_000_000)
    copy_dir = atomic_pusher.io_utils.copy_dir

    def copy_while_another_pushes(source, destination):
        copy_dir(source, destination)
        # Another process's push renames its complete version into place first.
        os.makedirs(serving / '1700000000')
        (serving / '1700000000' / 'saved_model.pb').write_bytes(b'the other push')

    monkeypatch.setattr(atomic_pusher.io_utils, 'copy_dir', copy_while_another_pushes)
    with pytest.raises(atomic_pusher.PushError, match='version 1700000000 of .* appeared during '
                                                      'this push'):
        _push(model_dir, serving, tmp_path)
    assert os.listdir(serving) == ['1700000000']
    assert (serving / '1700000000' / 'saved_model.pb').read_bytes() == b'the other push'


def test_a_killed_push_leaves_a_hidden_directory_that_the_next_push_removes(model_dir, tmp_path):
    serving = tmp_path / 'serving'
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    abandoned = serving / f'{atomic_pusher.STAGING_PREFIX}1700000000-{dead.pid}'
    running = serving / f'{atomic_pusher.STAGING_PREFIX}1700000000-{os.getppid()}'
    for directory in (abandoned, running):
        os.makedirs(directory)
        (directory / 'saved_model.pb').write_bytes(b'half')
    pushed = _push(model_dir, serving, tmp_path)
    assert not abandoned.exists()
    assert running.exists()  # another push, still going on
    assert _versions(serving) == [os.path.basename(
        pushed.get_string_custom_property('pushed_destination'))]


@pytest.fixture
def small_disk(tmp_path):
    """A directory on a 256 KiB file system of its own (tmpfs), smaller than the model."""
    directory = tmp_path / 'small_disk'
    directory.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', str(directory)],
                             capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, (
        f'this test mounts a small tmpfs, which needs root: {mounted.stderr}')
    yield directory
    subprocess.run(['umount', str(directory)], check=True)


def test_a_full_disk_fails_the_push_and_leaves_the_serving_directory_as_it_was(
        model_dir, tmp_path, small_disk):
    serving = small_disk / 'serving'
    os.makedirs(serving / '1600000000')
    (serving / '1600000000' / 'saved_model.pb').write_bytes(b'the serving model')
    before = _files(serving)
    big = _other_model(model_dir, tmp_path / 'big_model')
    # Beyond the disk's size, in a file of the model's own variables directory.
    with open(os.path.join(path_utils.serving_model_path(big), 'variables', 'padding'), 'wb') as f:
        f.write(os.urandom(512 * 1024))
    with pytest.raises(atomic_pusher.PushError, match='no space left on the device; the serving '
                                                      'directory is as it was'):
        _push(big, serving, tmp_path)
    assert _files(serving) == before
    assert os.listdir(serving) == ['1600000000']
