"""The models `model.architecture` names, each one definition: the DeepCTR-style model function and
which of `ModelConfig`'s arguments it takes. The Trainer builds the one the config names, and the
config accepts only the names here. A new architecture is a model function (models.py or a module
of its own) and an entry below.
"""

import dataclasses
from typing import Any, Callable, Dict, Mapping, Sequence

import tf_keras as keras

from trainer_module.models import MMOE, OMoE, SharedBottom
from trainer_module.settings import ModelConfig

# ModelConfig's fields that are MMOE's arguments (all but the architecture's name).
_MODEL_ARGUMENTS = tuple(field.name for field in dataclasses.fields(ModelConfig)
                         if field.name != 'architecture')


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A model function `model(feature_columns, **arguments) -> keras.Model` (DeepCTR's signature,
    task_types and task_names among the arguments), and `arguments(model_config)`: its keyword
    arguments from a `ModelConfig`."""
    model: Callable[..., keras.Model]
    arguments: Callable[[ModelConfig], Dict[str, Any]]


def _mixture_arguments(config: ModelConfig) -> Dict[str, Any]:
    return {name: getattr(config, name) for name in _MODEL_ARGUMENTS}


def _shared_bottom_arguments(config: ModelConfig) -> Dict[str, Any]:
    # No experts to count and no gates; the expert DNN's widths are the bottom DNN's.
    arguments = _mixture_arguments(config)
    del arguments['num_experts'], arguments['gate_dnn_hidden_units']
    arguments['bottom_dnn_hidden_units'] = arguments.pop('expert_dnn_hidden_units')
    return arguments


# MMoE and the paper's two baselines.
ARCHITECTURES: Mapping[str, Architecture] = {
    'mmoe': Architecture(MMOE, _mixture_arguments),
    'omoe': Architecture(OMoE, _mixture_arguments),
    'shared_bottom': Architecture(SharedBottom, _shared_bottom_arguments),
}


def build_architecture(config: ModelConfig, feature_columns, task_types: Sequence[str],
                       task_names: Sequence[str]) -> keras.Model:
    """The uncompiled model `config.architecture` names, on `feature_columns`, with an output per
    task named after `task_names`."""
    architecture = ARCHITECTURES[config.architecture]
    return architecture.model(feature_columns, **architecture.arguments(config),
                              task_types=tuple(task_types), task_names=tuple(task_names))
