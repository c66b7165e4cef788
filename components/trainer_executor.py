"""The Trainer's executor: TFX's own, then what decided the model recorded on its artifact.

`trainer_module.run.run_fn` writes the model's provenance into the SavedModel (`PROVENANCE_FILE`:
seed, the Trainer's settings and steps, fingerprints of the training and validation data, package
versions, the report of its warm start), so that it travels with every pushed copy. This executor
copies it onto the Model artifact as ML Metadata custom properties, where a query over past runs
finds it: among them `warm_started_from`, the base model the Trainer started from ('' when it
trained from scratch), and `warm_start`, the whole report as JSON (trainer_module/warm_start.py).
"""

import json
import os

from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as keys
from tfx.utils import path_utils

from trainer_module.settings import PROVENANCE_FILE

# The Model artifact's custom properties, and the keys of the provenance they come from.
SEED, TRAIN_DATA, VALIDATION_DATA, SETTINGS, VERSIONS = (
    'seed', 'train_data_fingerprint', 'validation_data_fingerprint', 'trainer_settings', 'versions')
WARM_STARTED_FROM, WARM_START = 'warm_started_from', 'warm_start'


def read_provenance(model_uri: str) -> dict:
    """The provenance the Trainer wrote into the model artifact at `model_uri`."""
    path = os.path.join(path_utils.serving_model_path(model_uri), PROVENANCE_FILE)
    with fileio.open(path) as f:
        return json.load(f)


class Executor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor, then the model's provenance as custom properties of its artifact."""

    def Do(self, input_dict, output_dict, exec_properties):
        """Trains as TFX's executor does, then sets `output_dict`'s Model artifact's seed, data
        fingerprints, settings (with the steps), versions and warm start; returns None."""
        super().Do(input_dict, output_dict, exec_properties)
        model = artifact_utils.get_single_instance(output_dict[keys.MODEL_KEY])
        provenance = read_provenance(model.uri)
        model.set_int_custom_property(SEED, provenance['seed'])
        model.set_string_custom_property(TRAIN_DATA, provenance['data']['train'])
        model.set_string_custom_property(VALIDATION_DATA, provenance['data']['validation'])
        model.set_string_custom_property(SETTINGS, json.dumps(
            {'steps': provenance['steps'], **provenance['settings']}, sort_keys=True))
        model.set_string_custom_property(VERSIONS, json.dumps(provenance['versions'],
                                                              sort_keys=True))
        warm_start = provenance.get('warm_start') or {}
        model.set_string_custom_property(
            WARM_STARTED_FROM, warm_start.get('base_model', '') if warm_start.get('warm') else '')
        model.set_string_custom_property(WARM_START, json.dumps(warm_start, sort_keys=True))
