"""TFX's Pusher with an atomic push into a local serving directory, and a sample REST request.

TFX's Pusher copies the model file by file into `<serving dir>/<version>` (saved_model.pb last), so
whoever lists the directory meanwhile sees a half-written version. This executor copies it under a
hidden name first and renames it to its version when complete: a model server sees the old versions
or the whole new one. A push killed midway leaves a hidden `.incomplete-<version>` directory, which
servers ignore (TF Serving loads numeric names only) and the next push of that version replaces.
Object stores (gs://, s3://) have no atomic rename; there TFX's own push runs.

A model that is already the newest version (the same files: a cached Trainer's model, blessed
again) is not pushed again as a new version, which a model server would load for nothing; the
PushedModel artifact then says `pushed` 0 and names that version in `already_serving`.

Given the raw `examples` (ExampleGen's), the push also writes `REQUEST_EXAMPLE_FILE` into the
version directory: a TF Serving REST body that scores the first rows of the eval split with the
raw-features signature (trainer_module/serving.py), ready for `curl -d @request_example.json`.
"""

import filecmp
import json
import os
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

from trainer_module.serving import example_to_instance
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


def newest_version(base_directory: str):
    """The path of the newest version (numeric name) in `base_directory`, or None."""
    versions = [name for name in (os.listdir(base_directory) if os.path.isdir(base_directory)
                                  else []) if name.isdigit()]
    return os.path.join(base_directory, max(versions, key=int)) if versions else None


# Beside the SavedModel in each pushed version (TF Serving ignores files it does not know).
REQUEST_EXAMPLE_FILE = 'request_example.json'
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
    instances = [example_to_instance(tf.train.Example.FromString(record.numpy()), dtypes)
                 for record in records]
    return {'signature_name': RAW_SIGNATURE, 'instances': instances}


class PusherSpec(keys.PusherSpec):
    INPUTS = {**keys.PusherSpec.INPUTS,
              keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True)}


class Executor(pusher_executor.Executor):

    def Do(self, input_dict, output_dict, exec_properties):
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[keys.PUSH_DESTINATION_KEY], destination)
        base_directory = destination.filesystem.base_directory
        examples = input_dict.get(keys.EXAMPLES_KEY)
        if '://' in base_directory:
            super().Do(input_dict, output_dict, exec_properties)
            pushed_model = artifact_utils.get_single_instance(output_dict[keys.PUSHED_MODEL_KEY])
            if examples and pushed_model.get_int_custom_property('pushed') == 1:
                self._write_request(input_dict, pushed_model.get_string_custom_property(
                    'pushed_destination'))
            return None

        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(output_dict[keys.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            return None
        model_path = self.GetModelPath(input_dict)
        serving = newest_version(base_directory)
        if serving and _same_files(model_path, serving, ignore=[REQUEST_EXAMPLE_FILE]):
            self._MarkNotPushed(pushed_model)
            pushed_model.set_string_custom_property(ALREADY_SERVING, serving)
            return None
        version = str(int(time.time()))
        serving_path = os.path.join(base_directory, version)
        if not fileio.exists(serving_path):
            staging_path = os.path.join(base_directory, STAGING_PREFIX + version)
            if fileio.exists(staging_path):
                fileio.rmtree(staging_path)
            io_utils.copy_dir(model_path, staging_path)
            if examples:
                self._write_request(input_dict, staging_path)
            fileio.rename(staging_path, serving_path)
        io_utils.copy_dir(model_path, pushed_model.uri)
        self._MarkPushed(pushed_model, pushed_destination=serving_path, pushed_version=version)
        return None

    def _write_request(self, input_dict, version_dir: str):
        examples = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
        body = request_example(self.GetModelPath(input_dict),
                               artifact_utils.get_split_uri([examples], REQUEST_SPLIT))
        with fileio.open(os.path.join(version_dir, REQUEST_EXAMPLE_FILE), 'w') as f:
            # NaN (a missing number) is valid in TF Serving's REST API, which reads it as such.
            f.write(json.dumps(body, indent=1, sort_keys=True))


class Pusher(pusher_component.Pusher):
    """TFX's Pusher with this module's executor and the optional raw `examples` it samples the
    request example from."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model, model_blessing, push_destination: pusher_pb2.PushDestination,
                 examples=None, infra_blessing=None):
        # pylint: disable=non-parent-init-called,super-init-not-called
        base_component.BaseComponent.__init__(self, spec=PusherSpec(
            model=model, model_blessing=model_blessing, infra_blessing=infra_blessing,
            examples=examples, push_destination=push_destination,
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel)))
