"""AnomalyCheck: stops the run before Transform when the data breaks the schema or has drifted.

ExampleValidator (data against the schema) and DistributionValidator (data against the previous
data) only record anomalies; this component reads them and fails with a message that names each
split, feature and anomaly, or logs that message as a warning when `fail_on_anomalies` is false.
"""

import logging
import os
from typing import List

from tensorflow_data_validation.utils import anomalies_util
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts

from trainer_module.settings import PROGRESS_LOGGER


class DataAnomaliesError(RuntimeError):
    """The data breaks the schema or drifted; the message lists every anomaly."""


def describe_anomalies(anomalies: standard_artifacts.ExampleAnomalies) -> List[str]:
    """One line per anomaly: '<split>: feature <name>: <what is wrong>'. ExampleValidator writes a
    directory per split (Split-train), DistributionValidator one per pair (SplitPair-train_train)."""
    lines = []
    for path in sorted(fileio.glob(os.path.join(anomalies.uri, '*', DEFAULT_FILE_NAME))):
        split = os.path.basename(os.path.dirname(path)).split('-', 1)[1]
        found = anomalies_util.load_anomalies_binary(path)
        for feature, info in sorted(found.anomaly_info.items()):
            lines.append(f'{split}: feature {feature!r}: {_what(info)}')
        if found.HasField('dataset_anomaly_info'):
            lines.append(f'{split}: dataset: {_what(found.dataset_anomaly_info)}')
    return lines


def _what(info) -> str:
    """The anomaly's description; DistributionValidator leaves it empty and describes each reason."""
    return info.description or '; '.join(reason.description or reason.short_description
                                          for reason in info.reason) or info.short_description


@component
def AnomalyCheck(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
                 drift: InputArtifact[standard_artifacts.ExampleAnomalies] = None,
                 fail_on_anomalies: Parameter[bool] = True):
    sections = []
    lines = describe_anomalies(anomalies)
    if lines:
        sections.append('The data does not match the schema:\n  ' + '\n  '.join(lines)
                        + f'\n(anomalies: {anomalies.uri})')
    lines = describe_anomalies(drift) if drift is not None else []
    if lines:
        sections.append("The data drifted from the previous run's data beyond the drift bounds:\n  "
                        + '\n  '.join(lines) + f'\n(anomalies: {drift.uri})')
    if not sections:
        return
    message = '\n'.join(sections)
    if fail_on_anomalies:
        raise DataAnomaliesError(message)
    logging.getLogger(PROGRESS_LOGGER).warning('%s\nContinuing: anomalies are warnings in this run.',
                                               message)
