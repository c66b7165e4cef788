"""The architectures `model.architecture` names (trainer_module/architectures.py): each takes
every argument the config gives it, and the config accepts exactly their names. That the Trainer
builds the named one is in test_models.py (`test_trainer_builds_the_architecture_of_its_config`)."""

import inspect
import subprocess
import sys

import pytest

from pipeline.config import PROJECT_DIR, ConfigError, PipelineConfig
from trainer_module.architectures import ARCHITECTURES
from trainer_module.settings import ModelConfig


@pytest.mark.parametrize('name', sorted(ARCHITECTURES))
def test_each_architecture_takes_the_arguments_the_config_gives_it(name):
    architecture = ARCHITECTURES[name]
    parameters = inspect.signature(architecture.model_function()).parameters
    given = set(architecture.arguments(ModelConfig(architecture=name)))
    assert given | {'task_types', 'task_names'} <= set(parameters) - {'dnn_feature_columns'}
    # DeepCTR's defaults are ours: what the config leaves out, the model function's default gives.
    for argument, value in architecture.arguments(ModelConfig(architecture=name)).items():
        default = parameters[argument].default
        default = tuple(default) if isinstance(default, (list, tuple)) else default
        assert default == value, argument


def test_the_config_checks_architectures_without_loading_tensorflow():
    """Every command line loads the config; TensorFlow takes seconds to import."""
    check = ('import sys; from pipeline.config import PipelineConfig; '
             "PipelineConfig().with_overrides(['model.architecture=omoe']); "
             "assert 'tensorflow' not in sys.modules, 'TensorFlow loaded'")
    subprocess.run([sys.executable, '-c', check], check=True, cwd=PROJECT_DIR)


def test_the_config_accepts_exactly_the_architectures():
    for name in ARCHITECTURES:
        PipelineConfig().with_overrides([f'model.architecture={name}'])
    with pytest.raises(ConfigError, match="model.architecture: 'ple' is not one of"):
        PipelineConfig().with_overrides(['model.architecture=ple'])
