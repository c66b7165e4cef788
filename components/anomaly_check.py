"""AnomalyCheck: stops the run before Transform when the data breaks the schema or has drifted, or
when its training split cannot train the model.

ExampleValidator (data against the schema) and DistributionValidator (data against the previous
data) only record anomalies; this component reads them and fails with a message that names each
split, feature and anomaly, or logs that message as a warning when `fail_on_anomalies` is false.
A training split without rows, or a binary task's label with one value only in it, stops the run
whatever `fail_on_anomalies` says: no model can learn the task from it.
"""

import json
import logging
import os
from typing import List

import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils import anomalies_util
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts

from trainer_module.settings import PROGRESS_LOGGER


TRAIN_SPLIT = 'train'


class DataAnomaliesError(RuntimeError):
    """The data breaks the schema or drifted; the message lists every anomaly."""


class TrainingDataError(RuntimeError):
    """The training split has no rows, or a binary label has one class only in it."""


def training_split_problems(statistics: standard_artifacts.ExampleStatistics,
                            binary_labels: List[str]) -> List[str]:
    """What keeps the training split's statistics from training a model: no rows, or a binary
    label whose values are all the same."""
    stats = tfdv.load_stats_binary(
        os.path.join(statistics.uri, f'Split-{TRAIN_SPLIT}', 'FeatureStats.pb')).datasets[0]
    if stats.num_examples == 0:
        return [f'{TRAIN_SPLIT}: no rows']
    problems = []
    features = {tuple(feature.path.step): feature for feature in stats.features}
    for label in binary_labels:
        if (label,) not in features:  # a missing column is ExampleValidator's to report
            continue
        numbers = features[(label,)].num_stats
        rows = numbers.common_stats.num_non_missing
        if rows and numbers.min == numbers.max:
            problems.append(f'{TRAIN_SPLIT}: label {label!r} is {numbers.min:g} in all {rows} '
                            'rows: a binary task needs both classes')
    return problems


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
                 statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
                 drift: InputArtifact[standard_artifacts.ExampleAnomalies] = None,
                 fail_on_anomalies: Parameter[bool] = True,
                 binary_labels: Parameter[str] = '[]'):
    """`binary_labels`: the JSON list of the binary tasks' label columns."""
    problems = (training_split_problems(statistics, json.loads(binary_labels))
                if statistics is not None else [])
    sections = []
    if problems:
        sections.append('The training split cannot train the model:\n  ' + '\n  '.join(problems)
                        + f'\n(statistics: {statistics.uri})')
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
    if problems:
        raise TrainingDataError(message)
    if fail_on_anomalies:
        raise DataAnomaliesError(message)
    logging.getLogger(PROGRESS_LOGGER).warning('%s\nContinuing: anomalies are warnings in this run.',
                                               message)
