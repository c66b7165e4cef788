"""Pusher's executor with an atomic push into a local serving directory.

TFX's Pusher copies the model file by file into `<serving dir>/<version>` (saved_model.pb last), so
whoever lists the directory meanwhile sees a half-written version. This executor copies it under a
hidden name first and renames it to its version when complete: a model server sees the old versions
or the whole new one. A push killed midway leaves a hidden `.incomplete-<version>` directory, which
servers ignore (TF Serving loads numeric names only) and the next push of that version replaces.
Object stores (gs://, s3://) have no atomic rename; there TFX's own push runs.

A model that is already the newest version (the same files: a cached Trainer's model, blessed
again) is not pushed again as a new version, which a model server would load for nothing; the
PushedModel artifact then says `pushed` 0 and names that version in `already_serving`.
"""

import filecmp
import os
import time

from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs as keys
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = '.incomplete-'
ALREADY_SERVING = 'already_serving'


def _same_files(left: str, right: str) -> bool:
    """Whether two local directories hold the same files with the same bytes."""
    comparison = filecmp.dircmp(left, right)
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


class Executor(pusher_executor.Executor):

    def Do(self, input_dict, output_dict, exec_properties):
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[keys.PUSH_DESTINATION_KEY], destination)
        base_directory = destination.filesystem.base_directory
        if '://' in base_directory:
            return super().Do(input_dict, output_dict, exec_properties)

        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(output_dict[keys.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            return None
        model_path = self.GetModelPath(input_dict)
        serving = newest_version(base_directory)
        if serving and _same_files(model_path, serving):
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
            fileio.rename(staging_path, serving_path)
        io_utils.copy_dir(model_path, pushed_model.uri)
        self._MarkPushed(pushed_model, pushed_destination=serving_path, pushed_version=version)
        return None
