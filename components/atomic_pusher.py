"""TFX's Pusher with an atomic push into a local serving directory, and a sample REST request.

TFX's Pusher copies the model file by file into `<serving dir>/<version>` (saved_model.pb last), so
whoever lists the directory meanwhile sees a half-written version. This executor copies it under a
hidden name first and renames it to its version when complete: a model server sees the old versions
or the whole new one. Object stores (gs://, s3://) have no atomic rename; there TFX's own push runs.

Versions are unique and increasing: the seconds since the epoch, or the newest version + 1 where
that is larger (two pushes in one second, or a clock that stepped back, would otherwise name a
version that exists or one below the newest, which TF Serving never loads). Each push stages into
a directory of its own (`.incomplete-<version>-<pid>`), and the rename into a version that another
push took meanwhile fails: a collision is an error, never a skipped push. A push that fails (a full
disk) removes its staging directory, leaving the serving directory as it was; one killed midway
leaves it behind, hidden from servers (TF Serving loads numeric names only), and the next push
removes it once its process is gone.

A model that is already the newest version (the same files: a cached Trainer's model, blessed
again) is not pushed again as a new version, which a model server would load for nothing; the
PushedModel artifact then says `pushed` 0 and names that version in `already_serving`.

Given the raw `examples` (ExampleGen's), the push also writes `REQUEST_EXAMPLE_FILE` into the
version directory: a TF Serving REST body that scores the first rows of the eval split with the
raw-features signature (trainer_module/serving.py), ready for `curl -d @request_example.json`.
Given `statistics` (AnomalyCheck's checked statistics of the data the model was trained on), it
writes them into `TRAINING_STATISTICS_DIR` there: the drift baseline where no Resolver runs
(components/serving_baseline.py).
"""

import errno
import filecmp
import json
import os
import re
import shutil
import time

import tensorflow as tf
from tensorflow.python.saved_model import loader_impl  # pylint: disable=no-name-in-module
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, channel, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.types.component_spec import ChannelParameter
from tfx.utils import io_utils, proto_utils

from components.anomaly_check import CheckedStatistics
from trainer_module.serving import example_to_instance, list_separators
from trainer_module.settings import RAW_SIGNATURE

STAGING_PREFIX = '.incomplete-'
ALREADY_SERVING = 'already_serving'


def _same_files(left: str, right: str, ignore=()) -> bool:
    """Whether two local directories hold the same files with the same bytes (but `ignore`'s)."""
    comparison = filecmp.dircmp(left, right, ignore=list(ignore))
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, different, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    return not different and not errors and all(
        _same_files(os.path.join(left, d), os.path.join(right, d)) for d in comparison.common_dirs)


class PushError(RuntimeError):
    """A push that cannot complete; the serving directory is left as it was."""


def next_version(base_directory: str) -> int:
    """The version a push now takes: the clock's seconds, or above the newest version."""
    newest = newest_version(base_directory)
    return max(int(time.time()), int(os.path.basename(newest)) + 1 if newest else 0)


_STAGING = re.compile(re.escape(STAGING_PREFIX) + r'\d+-(\d+)$')


def _remove_abandoned_staging(base_directory: str):
    """Removes the staging directories of pushes whose process is gone (killed midway)."""
    for name in os.listdir(base_directory):
        match = _STAGING.match(name)
        if match and not _running(int(match.group(1))):
            shutil.rmtree(os.path.join(base_directory, name), ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def newest_version(base_directory: str):
    """The path of the newest version (numeric name) in `base_directory`, or None."""
    versions = [name for name in (os.listdir(base_directory) if os.path.isdir(base_directory)
                                  else []) if name.isdigit()]
    return os.path.join(base_directory, max(versions, key=int)) if versions else None


# Beside the SavedModel in each pushed version (TF Serving ignores files it does not know).
REQUEST_EXAMPLE_FILE = 'request_example.json'
# Beside it, the statistics of the data the version was trained on (its split directories).
TRAINING_STATISTICS_DIR = 'training_statistics'
# The files of a version that are not the model.
_NOT_THE_MODEL = (REQUEST_EXAMPLE_FILE, TRAINING_STATISTICS_DIR)
REQUEST_ROWS = 2
REQUEST_SPLIT = 'eval'


def raw_signature_dtypes(saved_model_dir: str):
    """{input: dtype} of the SavedModel's RAW_SIGNATURE, read from its SignatureDef (no loading)."""
    meta_graph = loader_impl.parse_saved_model(saved_model_dir).meta_graphs[0]
    if RAW_SIGNATURE not in meta_graph.signature_def:
        raise ValueError(f'{saved_model_dir} has no {RAW_SIGNATURE!r} signature (a model exported '
                         'by trainer_module.run has one)')
    return {name: tf.as_dtype(info.dtype)
            for name, info in meta_graph.signature_def[RAW_SIGNATURE].inputs.items()}


def request_example(saved_model_dir: str, examples_uri: str) -> dict:
    """A REST body of the first REQUEST_ROWS raw examples under `examples_uri`."""
    dtypes = raw_signature_dtypes(saved_model_dir)
    files = sorted(fileio.glob(os.path.join(examples_uri, '*')))
    records = tf.data.TFRecordDataset(files, compression_type='GZIP').take(REQUEST_ROWS)
    separators = list_separators(saved_model_dir)
    instances = [example_to_instance(tf.train.Example.FromString(record.numpy()), dtypes,
                                     separators)
                 for record in records]
    return {'signature_name': RAW_SIGNATURE, 'instances': instances}


class PusherSpec(keys.PusherSpec):
    """TFX's PusherSpec with ExampleGen's raw `examples` and the checked `statistics` as optional
    inputs."""

    INPUTS = {**keys.PusherSpec.INPUTS,
              keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
              keys.STATISTICS_KEY: ChannelParameter(type=CheckedStatistics, optional=True)}


class Executor(pusher_executor.Executor):
    """TFX's Pusher executor with the atomic push into a local serving directory, no new version
    for a model that is already the newest, and the request example written beside a pushed
    version when `examples` is given; TFX's own push into an object store."""

    def Do(self, input_dict, output_dict, exec_properties):
        """Pushes `input_dict`'s model, if blessed, to the push destination and marks
        `output_dict`'s PushedModel pushed or not (`already_serving` where it was); returns None."""
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[keys.PUSH_DESTINATION_KEY], destination)
        base_directory = destination.filesystem.base_directory
        if '://' in base_directory:
            super().Do(input_dict, output_dict, exec_properties)
            pushed_model = artifact_utils.get_single_instance(output_dict[keys.PUSHED_MODEL_KEY])
            if pushed_model.get_int_custom_property('pushed') == 1:
                self._write_beside(input_dict, pushed_model.get_string_custom_property(
                    'pushed_destination'))
            return None

        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(output_dict[keys.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            return None
        model_path = self.GetModelPath(input_dict)
        serving = newest_version(base_directory)
        if serving and _same_files(model_path, serving, ignore=_NOT_THE_MODEL):
            self._MarkNotPushed(pushed_model)
            pushed_model.set_string_custom_property(ALREADY_SERVING, serving)
            return None
        serving_path = self._push_local(input_dict, model_path, base_directory)
        version = os.path.basename(serving_path)
        io_utils.copy_dir(model_path, pushed_model.uri)
        self._MarkPushed(pushed_model, pushed_destination=serving_path, pushed_version=version)
        return None

    def _push_local(self, input_dict, model_path: str, base_directory: str) -> str:
        """Copies the model into a new version of a local serving directory; returns its path."""
        os.makedirs(base_directory, exist_ok=True)
        _remove_abandoned_staging(base_directory)
        version = str(next_version(base_directory))
        serving_path = os.path.join(base_directory, version)
        staging_path = os.path.join(base_directory, f'{STAGING_PREFIX}{version}-{os.getpid()}')
        try:
            io_utils.copy_dir(model_path, staging_path)
            self._write_beside(input_dict, staging_path)
            # os.rename, not fileio's: it refuses to replace a version directory that holds files.
            os.rename(staging_path, serving_path)
        except BaseException as error:
            shutil.rmtree(staging_path, ignore_errors=True)
            if not isinstance(error, Exception):
                raise
            if (isinstance(error, OSError) and error.errno in (errno.EEXIST, errno.ENOTEMPTY)
                    and os.path.isdir(serving_path)):
                raise PushError(f'version {version} of {base_directory} appeared during this '
                                'push (another push into the same serving directory?); nothing '
                                'was pushed') from error
            # TensorFlow's file system (under fileio) reports a full disk as ResourceExhausted.
            full = (getattr(error, 'errno', None) in (errno.ENOSPC, errno.EDQUOT)
                    or isinstance(error, tf.errors.ResourceExhaustedError))
            raise PushError(f'pushing version {version} into {base_directory} failed: '
                            f'{"no space left on the device" if full else error}; the serving '
                            'directory is as it was') from error
        return serving_path

    def _write_beside(self, input_dict, version_dir: str):
        """Writes the request example and the training statistics, of the inputs given, into
        `version_dir`."""
        if input_dict.get(keys.STATISTICS_KEY):
            statistics = artifact_utils.get_single_instance(input_dict[keys.STATISTICS_KEY])
            io_utils.copy_dir(statistics.uri, os.path.join(version_dir, TRAINING_STATISTICS_DIR))
        if not input_dict.get(keys.EXAMPLES_KEY):
            return
        examples = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
        body = request_example(self.GetModelPath(input_dict),
                               artifact_utils.get_split_uri([examples], REQUEST_SPLIT))
        with fileio.open(os.path.join(version_dir, REQUEST_EXAMPLE_FILE), 'w') as f:
            # NaN (a missing number) is valid in TF Serving's REST API, which reads it as such.
            f.write(json.dumps(body, indent=1, sort_keys=True))


class Pusher(pusher_component.Pusher):
    """TFX's Pusher with this module's executor, the optional raw `examples` it samples the
    request example from and the checked `statistics` it keeps beside the model."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model, model_blessing, push_destination: pusher_pb2.PushDestination,
                 examples=None, statistics=None, infra_blessing=None):
        # pylint: disable=non-parent-init-called,super-init-not-called
        base_component.BaseComponent.__init__(self, spec=PusherSpec(
            model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
            examples=examples, statistics=statistics, push_destination=push_destination,
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel)))
