"""AnomalyCheck: stops the run before Transform when the data breaks the schema or has drifted, or
when its training split cannot train the model.

ExampleValidator (data against the schema) and DistributionValidator (data against the previous
data) only record anomalies; this component reads them and fails with a message that names each
split, feature and anomaly, or logs that message as a warning when `fail_on_anomalies` is false.
A training split without rows, or a binary task's label with one value only in it, stops the run
whatever `fail_on_anomalies` says: no model can learn the task from it.

A run whose data passes every check (or whose anomalies `fail_on_anomalies: false` makes
warnings) gets its statistics published again as `checked_statistics`, of a type of their own:
the next run's drift baseline. A failed execution publishes nothing, so data the checks refused
never becomes a baseline, however often it is run again. The type of their own, rather than a
filter on the producer, is what keeps the baseline query right on Kubeflow, where TFX's resolver
compiles to a query by artifact type only.
"""

import json
import logging
import os
from typing import Dict, List

import tensorflow_data_validation as tfdv
from tensorflow_data_validation.utils import anomalies_util
from tfx.components.example_validator.executor import DEFAULT_FILE_NAME
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.types.experimental import simple_artifacts
from tfx.utils import io_utils

from components.span_window import EXAMPLES_ID, SPAN, span_of
from trainer_module.settings import PROGRESS_LOGGER

TRAIN_SPLIT = 'train'
COMPONENT_ID = 'AnomalyCheck'
CHECKED_STATISTICS_KEY = 'checked_statistics'


# The type of the statistics this check publishes: TFX's generic Statistics, which nothing else in
# the pipeline produces and which KFP v2 compiles as a type of its own (a custom type compiles to
# the catch-all tfx.Artifact, and may not carry ExampleStatistics' properties there).
CheckedStatistics = simple_artifacts.Statistics


class DataAnomaliesError(RuntimeError):
    """The data breaks the schema or drifted; the message lists every anomaly."""


class TrainingDataError(RuntimeError):
    """The training split has no rows, a binary label has one class only in it, or a task's
    sample space has no row in a split."""


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


def sample_space_problems(statistics: standard_artifacts.ExampleStatistics,
                          spaces: Dict[str, str]) -> List[str]:
    """Each split in which a task's sample space ({task: label column}, the rows where that label
    is 1) has no row: the task could not be trained or judged there."""
    problems = []
    for path in sorted(fileio.glob(os.path.join(statistics.uri, 'Split-*', 'FeatureStats.pb'))):
        split = os.path.basename(os.path.dirname(path)).split('-', 1)[1]
        stats = tfdv.load_stats_binary(path).datasets[0]
        features = {tuple(feature.path.step): feature for feature in stats.features}
        for task, label in sorted(spaces.items()):
            if (label,) in features and features[(label,)].num_stats.max < 1:
                problems.append(f'{split}: no row where {label!r} is 1: task {task!r}, trained and '
                                f'judged on those rows (its `given`), has none')
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


def checked_split_names(checked: CheckedStatistics) -> List[str]:
    """The splits of published statistics, from their directories (the type has no properties)."""
    return sorted(name.rstrip('/').split('-', 1)[1] for name in fileio.listdir(checked.uri)
                  if name.startswith('Split-'))


@component
def AnomalyCheck(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
                 checked_statistics: OutputArtifact[CheckedStatistics],
                 statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
                 drift: InputArtifact[standard_artifacts.ExampleAnomalies] = None,
                 examples: InputArtifact[standard_artifacts.Examples] = None,
                 fail_on_anomalies: Parameter[bool] = True,
                 binary_labels: Parameter[str] = '[]',
                 sample_spaces: Parameter[str] = '{}'):
    """`binary_labels`: the JSON list of the binary tasks' label columns; `sample_spaces`: JSON
    {task: the label column of its sample space} of the tasks that have one. `examples`: the
    examples the statistics describe, whose id and span the published statistics record
    (components/span_window.py: what was checked is what a training window may read)."""
    problems = (training_split_problems(statistics, json.loads(binary_labels))
                + sample_space_problems(statistics, json.loads(sample_spaces))
                if statistics is not None else [])
    sections = []
    if problems:
        sections.append('The data cannot train or judge the model:\n  ' + '\n  '.join(problems)
                        + f'\n(statistics: {statistics.uri})')
    lines = describe_anomalies(anomalies)
    if lines:
        sections.append('The data does not match the schema:\n  ' + '\n  '.join(lines)
                        + f'\n(anomalies: {anomalies.uri})')
    lines = describe_anomalies(drift) if drift is not None else []
    if lines:
        sections.append(('The data drifted beyond the drift bounds from the last data that passed '
                         'every check:\n  ')
                        + '\n  '.join(lines) + f'\n(anomalies: {drift.uri})')
    if sections:
        message = '\n'.join(sections)
        if problems:
            raise TrainingDataError(message)
        if fail_on_anomalies:
            raise DataAnomaliesError(message)
        logging.getLogger(PROGRESS_LOGGER).warning(
            '%s\nContinuing: anomalies are warnings in this run.', message)
    if statistics is not None:
        # The split directories (Split-<name>) come along: they name the splits.
        io_utils.copy_dir(statistics.uri, checked_statistics.uri)
    if examples is not None:
        checked_statistics.set_int_custom_property(EXAMPLES_ID, examples.id or 0)
        checked_statistics.set_int_custom_property(SPAN, span_of(examples))
