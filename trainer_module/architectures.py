"""The models `model.architecture` names, each one definition: the DeepCTR-style model function and
which of `ModelConfig`'s arguments it takes. The Trainer builds the one the config names, and the
config accepts only the names here. A new architecture is a model function in models.py and an
entry below.

The entries name their function rather than hold it: the config (which every command line loads)
checks names against this module, and importing the models would load TensorFlow with it.
"""

import dataclasses
import importlib
from typing import Any, Callable, Dict, Mapping, Sequence

from trainer_module.settings import ModelConfig

# ModelConfig's fields that are MMOE's arguments (all but the architecture's name).
_MODEL_ARGUMENTS = tuple(field.name for field in dataclasses.fields(ModelConfig)
                         if field.name != 'architecture')


@dataclasses.dataclass(frozen=True)
class Architecture:
    """`model`: the name of a function of trainer_module/models.py, `model(feature_columns,
    **arguments) -> keras.Model` (DeepCTR's signature, task_types and task_names among the
    arguments); `arguments(model_config)`: its keyword arguments from a `ModelConfig`."""
    model: str
    arguments: Callable[[ModelConfig], Dict[str, Any]]

    def model_function(self) -> Callable:
        """The model function `model` names."""
        return getattr(importlib.import_module('trainer_module.models'), self.model)


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
    'mmoe': Architecture('MMOE', _mixture_arguments),
    'omoe': Architecture('OMoE', _mixture_arguments),
    'shared_bottom': Architecture('SharedBottom', _shared_bottom_arguments),
}


def build_architecture(config: ModelConfig, feature_columns, task_types: Sequence[str],
                       task_names: Sequence[str]):
    """The uncompiled Keras model `config.architecture` names, on `feature_columns`, with an
    output per task named after `task_names`."""
    architecture = ARCHITECTURES[config.architecture]
    return architecture.model_function()(feature_columns, **architecture.arguments(config),
                              task_types=tuple(task_types), task_names=tuple(task_names))
