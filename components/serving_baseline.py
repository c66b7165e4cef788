"""ServingBaseline: what serves, read from the serving directory when the run executes, as the
Evaluators' baseline model and the drift check's baseline statistics.

Open-source Kubeflow Pipelines runs no Resolver (its compiler refuses resolver executors), so
there the serving directory is the one record of what serves: its newest version is the baseline
model, and the statistics the Pusher wrote beside it (`TRAINING_STATISTICS_DIR`, the checked
statistics of the data that model was trained on) are the drift baseline. The outputs copy them,
so that each run's lineage holds the baseline it was judged against. With nothing serving yet
both outputs are empty, and the Evaluators and the drift check then run without a baseline, as on
a first run elsewhere.

`serving_version()` is what the task's cache key needs: kubeflow_runner.py compiles it as a task
of its own that is never cached, and feeds its result to this component as a parameter, so that
this task (and everything after it) is reused exactly while the same version serves.
"""

import os
import re

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, path_utils

from components.anomaly_check import CheckedStatistics
from components.atomic_pusher import TRAINING_STATISTICS_DIR, newest_version

COMPONENT_ID = 'ServingBaseline'
SERVING_DIR_KEY = 'serving_dir'
# The version name the compiled spec passes in (kubeflow_runner.py); '' when nothing serves.
SERVING_VERSION_KEY = 'serving_version'
MODEL_KEY, STATISTICS_KEY = 'model', 'statistics'


def serving_version(serving_dir: str) -> str:
    """The name of the newest version in `serving_dir`, or '' where none is."""
    newest = newest_version(serving_dir)
    return os.path.basename(newest) if newest else ''


class Executor(base_executor.BaseExecutor):
    """Copies the newest version of the serving directory into `model` (as the Trainer lays out a
    model) and its training statistics into `statistics`; leaves both empty where nothing
    serves."""

    def Do(self, input_dict, output_dict, exec_properties):
        """No inputs; `exec_properties[SERVING_DIR_KEY]`: the Pusher's base directory. Refuses a
        version that disappeared since the compiled spec's check named it."""
        model = artifact_utils.get_single_instance(output_dict[MODEL_KEY])
        statistics = artifact_utils.get_single_instance(output_dict[STATISTICS_KEY])
        serving_dir = exec_properties[SERVING_DIR_KEY]
        version = serving_version(serving_dir)
        expected = exec_properties.get(SERVING_VERSION_KEY)
        if expected is not None and expected != version:
            raise RuntimeError(f'{serving_dir}: version {expected!r} was the newest when this run '
                               f'began, now {version!r} is; another run pushed meanwhile, rerun')
        fileio.makedirs(model.uri)
        fileio.makedirs(statistics.uri)
        if not version:
            return
        source = os.path.join(serving_dir, version)
        trained_on = os.path.join(source, TRAINING_STATISTICS_DIR)
        io_utils.copy_dir(source, path_utils.serving_model_path(model.uri),
                          deny_regex_patterns=[re.escape(trained_on)])
        model.set_string_custom_property(SERVING_VERSION_KEY, source)
        if fileio.exists(trained_on):
            io_utils.copy_dir(trained_on, statistics.uri)


def has_model(model: types.Artifact) -> bool:
    """Whether a Model artifact holds a model (a ServingBaseline's is empty when nothing serves)."""
    return fileio.exists(path_utils.serving_model_path(model.uri))


class ServingBaselineSpec(types.ComponentSpec):
    """No inputs; the serving directory (and the version the compiled spec found there) as
    parameters; the baseline model and statistics out."""

    PARAMETERS = {SERVING_DIR_KEY: ExecutionParameter(type=str),
                  SERVING_VERSION_KEY: ExecutionParameter(type=str, optional=True)}
    INPUTS = {}
    OUTPUTS = {MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
               STATISTICS_KEY: ChannelParameter(type=CheckedStatistics)}


class ServingBaseline(base_component.BaseComponent):
    """What serves in `serving_dir`, as `model` and `statistics` (module docstring)."""

    SPEC_CLASS = ServingBaselineSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, serving_dir: str):
        super().__init__(spec=ServingBaselineSpec(**{
            SERVING_DIR_KEY: serving_dir,
            MODEL_KEY: types.Channel(type=standard_artifacts.Model),
            STATISTICS_KEY: types.Channel(type=CheckedStatistics)}))
