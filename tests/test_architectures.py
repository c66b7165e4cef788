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

# Where ModelConfig's defaults (MMOE's, the same for every architecture) are not DeepCTR's
# defaults of the architecture's function (docs/model.md).
DEFAULTS_NOT_DEEPCTRS = {('ple', 'expert_dnn_hidden_units'), ('esmm', 'tower_dnn_hidden_units')}


@pytest.mark.parametrize('name', sorted(ARCHITECTURES))
def test_each_architecture_takes_the_arguments_the_config_gives_it(name):
    architecture = ARCHITECTURES[name]
    parameters = inspect.signature(architecture.model_function()).parameters
    given = set(architecture.arguments(ModelConfig(architecture=name)))
    assert given | {'task_types', 'task_names'} <= set(parameters) - {'dnn_feature_columns'}
    # DeepCTR's defaults are ours: what the config leaves out, the model function's default
    # gives, but where the config's defaults are the same for every architecture.
    for argument, value in architecture.arguments(ModelConfig(architecture=name)).items():
        default = parameters[argument].default
        default = tuple(default) if isinstance(default, (list, tuple)) else default
        assert (default == value) != ((name, argument) in DEFAULTS_NOT_DEEPCTRS), argument


def test_the_config_checks_architectures_without_loading_tensorflow():
    """Every command line loads the config; TensorFlow takes seconds to import."""
    check = ('import sys; from pipeline.config import PipelineConfig; '
             "PipelineConfig().with_overrides(['model.architecture=omoe']); "
             "assert 'tensorflow' not in sys.modules, 'TensorFlow loaded'")
    subprocess.run([sys.executable, '-c', check], check=True, cwd=PROJECT_DIR)


def test_the_config_accepts_exactly_the_architectures():
    for name in ARCHITECTURES:
        PipelineConfig().with_overrides([f'model.architecture={name}'])
    with pytest.raises(ConfigError, match="model.architecture: 'dcn' is not one of"):
        PipelineConfig().with_overrides(['model.architecture=dcn'])


REGRESSION_TASKS = ('tasks=[{name: ctr, label: click}, '
                    '{name: minutes, label: purchase, type: regression}]')
THREE_TASKS = ('tasks=[{name: a, label: click}, {name: b, label: purchase}, '
               '{name: c, label: watched}]')


@pytest.mark.parametrize('overrides, message', [
    (['model.num_levels=1'], 'model.num_levels: not an argument of mmoe (it takes num_experts, '),
    (['model.architecture=omoe', 'model.shared_expert_num=2'],
     'model.shared_expert_num: not an argument of omoe'),
    (['model.architecture=esmm', 'model.num_experts=4'],
     'model.num_experts: not an argument of esmm (it takes tower_dnn_hidden_units, '),
    (['model.architecture=shared_bottom', 'model.gate_dnn_hidden_units=[8]'],
     'model.gate_dnn_hidden_units: not an argument of shared_bottom'),
    (['model.architecture=ple', 'model.num_experts=4'], 'model.num_experts: not an argument of ple'),
    (['model.num_experts=1'], 'model.num_experts: must be at least 2, got 1'),
    (['model.architecture=ple', 'model.num_levels=0'], 'model.num_levels: PLE needs at least 1'),
    (['model.architecture=ple', 'model.specific_expert_num=0'],
     'model.specific_expert_num: PLE needs at least 1'),
    (['model.architecture=ple', 'model.shared_expert_num=0'],
     'model.shared_expert_num: PLE needs at least 1'),
    (['model.architecture=esmm', REGRESSION_TASKS],
     "tasks: model.architecture esmm takes binary tasks only, got ['binary', 'regression']"),
    (['model.architecture=esmm', THREE_TASKS],
     'tasks: model.architecture esmm takes exactly two tasks'),
])
def test_the_config_refuses_what_its_architecture_cannot_take_naming_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        PipelineConfig().with_overrides(overrides)
    assert str(error.value).startswith(message)


def test_each_architecture_takes_its_own_fields_and_the_defaults_of_the_others():
    PipelineConfig().with_overrides([
        'model.architecture=ple', 'model.num_levels=1', 'model.specific_expert_num=2',
        'model.shared_expert_num=3', 'model.gate_dnn_hidden_units=[8]'])
    # A field at its default is no setting, whatever the architecture.
    PipelineConfig().with_overrides(['model.architecture=esmm', 'model.num_experts=3',
                                     'model.expert_dnn_hidden_units=[256, 128]'])
