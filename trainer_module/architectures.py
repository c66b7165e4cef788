"""The models `model.architecture` names, each one definition: the DeepCTR-style model function,
which of `ModelConfig`'s fields it takes, and the checks of its own values. The Trainer builds the
one the config names; the config accepts only the names here, and refuses through `check` a field
the architecture does not take (set to other than its default) or a value it cannot build. A new
architecture is a model function in models.py and an entry below.

The entries name their function rather than hold it: the config (which every command line loads)
checks names against this module, and importing the models would load TensorFlow with it.
"""

import dataclasses
import importlib
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

from trainer_module.settings import ModelConfig

# What every architecture takes: its towers and the arguments every DeepCTR DNN and embedding
# shares.
_COMMON = ('tower_dnn_hidden_units', 'l2_reg_embedding', 'l2_reg_dnn', 'seed', 'dnn_dropout',
           'dnn_activation', 'dnn_use_bn')
_DEFAULTS = ModelConfig()


def _no_checks(config: ModelConfig, task_types: Sequence[str]) -> None:
    """Nothing beyond the fields the architecture takes."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    """`model`: the name of a function of trainer_module/models.py, `model(feature_columns,
    **arguments) -> keras.Model` (DeepCTR's signature, task_types and task_names among the
    arguments); `fields`: the `ModelConfig` fields it takes, each an argument of that name unless
    `renamed` maps it to another; `check(config, task_types)`: raises ValueError, its message
    starting with the key, where the config's values are ones the architecture cannot build.
    `entire_space`: the model trains every task on every row by its construction (ESMM learns its
    cvr through ctcvr = ctr x cvr), so no task of it may have a sample space of its own."""
    model: str
    fields: Tuple[str, ...]
    renamed: Mapping[str, str] = dataclasses.field(default_factory=dict)
    check: Callable[[ModelConfig, Sequence[str]], None] = _no_checks
    entire_space: bool = False

    def model_function(self) -> Callable:
        """The model function `model` names."""
        return getattr(importlib.import_module('trainer_module.models'), self.model)

    def arguments(self, config: ModelConfig) -> Dict[str, Any]:
        """The model function's keyword arguments from `config` (task_types and task_names
        aside)."""
        return {self.renamed.get(field, field): getattr(config, field) for field in self.fields}


def _check_experts(config: ModelConfig, task_types: Sequence[str]) -> None:
    if config.num_experts < 2:
        raise ValueError(f'model.num_experts: must be at least 2, got {config.num_experts}')


def _check_levels(config: ModelConfig, task_types: Sequence[str]) -> None:
    # DeepCTR's PLE builds with no shared or no specific experts, but that is no PLE: without
    # shared experts each task is a network of its own, without specific ones an MMOE.
    for field in ('num_levels', 'specific_expert_num', 'shared_expert_num'):
        value = getattr(config, field)
        if value < 1:
            raise ValueError(f'model.{field}: PLE needs at least 1, got {value}')


def _check_two_binary_tasks(config: ModelConfig, task_types: Sequence[str]) -> None:
    if len(task_types) != 2:
        raise ValueError(f'tasks: model.architecture esmm takes exactly two tasks, the click '
                         f'(ctr) and the conversion after it (ctcvr), got {len(task_types)}')
    if any(task_type != 'binary' for task_type in task_types):
        raise ValueError(f'tasks: model.architecture esmm takes binary tasks only, got '
                         f'{list(task_types)}')


_MIXTURE = ('num_experts', 'expert_dnn_hidden_units', 'gate_dnn_hidden_units') + _COMMON
# MMoE, the paper's two baselines, and DeepCTR's two other multi-task models.
ARCHITECTURES: Mapping[str, Architecture] = {
    'mmoe': Architecture('MMOE', _MIXTURE, check=_check_experts),
    'omoe': Architecture('OMoE', _MIXTURE, check=_check_experts),
    # No experts to count and no gates; the expert DNN's widths are the bottom DNN's.
    'shared_bottom': Architecture('SharedBottom', ('expert_dnn_hidden_units',) + _COMMON,
                                  renamed={'expert_dnn_hidden_units': 'bottom_dnn_hidden_units'}),
    'ple': Architecture('PLE', ('shared_expert_num', 'specific_expert_num', 'num_levels',
                                'expert_dnn_hidden_units', 'gate_dnn_hidden_units') + _COMMON,
                        check=_check_levels),
    'esmm': Architecture('ESMM', _COMMON, check=_check_two_binary_tasks, entire_space=True),
}


def check(config: ModelConfig, task_types: Sequence[str]) -> None:
    """Raises ValueError, its message starting with the key, where `config` names no
    architecture, sets a field its architecture does not take to other than the default, or
    holds values the architecture cannot build for tasks of `task_types`."""
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f'model.architecture: {config.architecture!r} is not one of '
                         f'{tuple(ARCHITECTURES)}')
    architecture = ARCHITECTURES[config.architecture]
    for field in dataclasses.fields(ModelConfig):
        name = field.name
        if (name != 'architecture' and name not in architecture.fields
                and getattr(config, name) != getattr(_DEFAULTS, name)):
            raise ValueError(f'model.{name}: not an argument of {config.architecture} (it takes '
                             f'{", ".join(architecture.fields)})')
    architecture.check(config, task_types)


def build_architecture(config: ModelConfig, feature_columns, task_types: Sequence[str],
                       task_names: Sequence[str]):
    """The uncompiled Keras model `config.architecture` names, on `feature_columns`, with an
    output per task named after `task_names`."""
    architecture = ARCHITECTURES[config.architecture]
    return architecture.model_function()(feature_columns, **architecture.arguments(config),
                                         task_types=tuple(task_types), task_names=tuple(task_names))
