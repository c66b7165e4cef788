"""AnomalyCheck: stops the run before Transform when ExampleValidator found anomalies.

ExampleValidator only records anomalies; this component reads them and fails with a message that names
each split, feature and anomaly, or logs that message as a warning when `fail_on_anomalies` is false.
"""

import logging
import os
from typing import List

from tensorflow_data_validation.utils import anomalies_util
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts


class DataAnomaliesError(RuntimeError):
    """The data does not match the schema; the message lists every anomaly."""


def describe_anomalies(anomalies: standard_artifacts.ExampleAnomalies) -> List[str]:
    """One line per anomaly: '<split>: feature <name>: <what is wrong>'."""
    lines = []
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), DEFAULT_FILE_NAME)
        found = anomalies_util.load_anomalies_binary(path)
        for feature, info in sorted(found.anomaly_info.items()):
            lines.append(f'{split}: feature {feature!r}: {info.description or info.short_description}')
        if found.HasField('dataset_anomaly_info'):
            info = found.dataset_anomaly_info
            lines.append(f'{split}: dataset: {info.description or info.short_description}')
    return lines


@component
def AnomalyCheck(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
                 fail_on_anomalies: Parameter[bool] = True):
    lines = describe_anomalies(anomalies)
    if not lines:
        return
    message = ('The data does not match the schema:\n  ' + '\n  '.join(lines)
               + f'\n(anomalies: {anomalies.uri})')
    if fail_on_anomalies:
        raise DataAnomaliesError(message)
    logging.getLogger('mmoe.progress').warning('%s\nContinuing: anomalies are warnings in this run.',
                                               message)
