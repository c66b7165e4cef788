"""TrainingWindow: continuous training's window on Kubeflow, where no resolver of ours runs.

A local run finds the window's spans in ML Metadata (components/span_window.py's resolvers). A
compiled spec cannot: open-source Kubeflow Pipelines runs no resolver task, and Vertex AI only
TFX's two strategies, neither of which picks spans. There the record of which spans passed their
checks is a directory, the span store, as the serving directory is the record of what serves
(components/serving_baseline.py):

- each run records the span it read, once that span's data passed every check (this component
  runs after AnomalyCheck, which fails a run whose data it refuses): `span-<N>.json` in the store
  names the Examples artifact that holds it. A span read again later is recorded again: the
  newest checked read of a span is the one a window takes, as locally.
- the run then takes its window: the `window_spans` spans before its own, each from its record,
  never read from the CSVs again. `training` holds their train and validation splits (the Trainer
  learns from the one and stops early on the other); `judged` holds every row of the run's own
  span as its eval split, none of which was trained on: a time-based eval split.
- with no span before its own in the store (the first run of a pipeline), the run trains and
  judges on the hash splits of its own span, as a local run on a directory's first span does.

TrainingWindow refuses, naming it, a span of the window that no run recorded (a day whose run
failed its checks or never ran: run the pipeline on that span first, `range_config`).
BackfillCheck, a task the compiled spec never takes from the cache, refuses a span older than the
newest one recorded unless `backfill` says that retraining on older data is meant: the tasks of a
span read before would otherwise all come from the cache, and judge that span's model against
the model that serves now on that span's rows, and push it if it won there.

The outputs are copies of the recorded splits' files (the Examples artifacts of earlier runs
stay as they are): an artifact's splits are directories under its own URI.
"""

import json
import os
import re
from typing import Dict

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.csv_example_gen import EVAL, SPLITS, TRAIN, VALIDATION
from components.span_window import SPAN, span_of
from pipeline.spans import training_window

# `training_window` is pipeline.spans', the local runner's rule too: there it runs before
# TensorFlow and TFX load, which any module of components/ imports.
COMPONENT_ID, BACKFILL_CHECK_ID = 'TrainingWindow', 'BackfillCheck'
EXAMPLES_KEY, TRAINING_KEY, JUDGED_KEY = 'examples', 'training', 'judged'
STORE_KEY, WINDOW_SPANS_KEY, BACKFILL_KEY = 'span_store', 'window_spans', 'backfill'
# On `training`: the spans it holds, oldest first (a JSON list).
WINDOW_PROPERTY = 'window'
_RECORD = re.compile(r'^span-(\d+)\.json$')


def record_span(store: str, examples: types.Artifact):
    """Records in `store` that `examples` (of its span) passed every check; replaces an older
    record of the same span. Written to a temporary name first: a reader never sees half a
    record."""
    fileio.makedirs(store)
    path = os.path.join(store, f'span-{span_of(examples)}.json')
    with fileio.open(f'{path}.tmp', 'w') as f:
        f.write(json.dumps({'uri': examples.uri}))
    fileio.rename(f'{path}.tmp', path, overwrite=True)


def recorded_spans(store: str) -> Dict[int, Dict[str, str]]:
    """{span: its record} of every span recorded in `store`."""
    if not fileio.exists(store):
        return {}
    records = {}
    for name in fileio.listdir(store):
        match = _RECORD.match(name.rstrip('/'))
        if match:
            with fileio.open(os.path.join(store, match[0])) as f:
                records[int(match[1])] = json.loads(f.read())
    return records


def _copy_split(source_uri: str, split: str, target_uri: str, target_split: str, prefix: str):
    """Copies the files of `split` of the Examples at `source_uri` into `target_split` of those
    at `target_uri` (TFX's layout: a directory `Split-<name>` each), each name prefixed: two
    spans' files have the same names."""
    source = os.path.join(source_uri, f'Split-{split}')
    destination = os.path.join(target_uri, f'Split-{target_split}')
    fileio.makedirs(destination)
    for name in fileio.listdir(source):
        fileio.copy(os.path.join(source, name), os.path.join(destination, f'{prefix}{name}'),
                    overwrite=True)


def _span(examples: types.Artifact) -> int:
    if not examples.has_custom_property(SPAN):
        raise ValueError(f'{examples.uri}: the examples have no span (ExampleGen records it '
                         'where its input pattern has {SPAN} or a date)')
    return span_of(examples)


class BackfillCheckExecutor(base_executor.BaseExecutor):
    """Fails where the run's span is older than a span in the span store, unless `backfill`."""

    def Do(self, input_dict, output_dict, exec_properties):
        """`input_dict[EXAMPLES_KEY]`: the run's examples; no outputs."""
        span = _span(artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY]))
        store = exec_properties[STORE_KEY]
        newer = [s for s in recorded_spans(store) if s > span]
        if newer and not exec_properties.get(BACKFILL_KEY):
            raise ValueError(
                f'span {span} is older than span {max(newer)}, which an earlier run read and '
                f'checked ({store}); to train and judge on older data on purpose, run with the '
                f'pipeline parameter {BACKFILL_KEY}=1')


class Executor(base_executor.BaseExecutor):
    """Records the run's span in the span store and writes `training` and `judged` (module
    docstring)."""

    def Do(self, input_dict, output_dict, exec_properties):
        """`input_dict[EXAMPLES_KEY]`: the run's examples (its span recorded on them);
        `output_dict`: TRAINING_KEY and JUDGED_KEY."""
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        training = artifact_utils.get_single_instance(output_dict[TRAINING_KEY])
        judged = artifact_utils.get_single_instance(output_dict[JUDGED_KEY])
        store, span = exec_properties[STORE_KEY], _span(examples)
        records = recorded_spans(store)
        window, missing = training_window(span, records, exec_properties[WINDOW_SPANS_KEY])
        if missing:
            raise ValueError(
                f'span {missing[0]} of the training window (span {window[0]} to span '
                f'{window[-1]}) was never read and checked by a run ({store} has no '
                f'span-{missing[0]}.json): run the pipeline on it first (range_config), or '
                'set training.window_spans to train on fewer')
        record_span(store, examples)
        own = examples.uri
        if window:
            for s in window:
                for split in (TRAIN, VALIDATION):
                    _copy_split(records[s]['uri'], split, training.uri, split, f'span-{s}-')
            for split in SPLITS:
                _copy_split(own, split, judged.uri, EVAL, f'{split}-')
        else:
            for split in (TRAIN, VALIDATION):
                _copy_split(own, split, training.uri, split, '')
            _copy_split(own, EVAL, judged.uri, EVAL, '')
        training.split_names = artifact_utils.encode_split_names([TRAIN, VALIDATION])
        judged.split_names = artifact_utils.encode_split_names([EVAL])
        training.set_string_custom_property(WINDOW_PROPERTY, json.dumps(list(window) or [span]))
        judged.set_int_custom_property(SPAN, span)


class BackfillCheckSpec(types.ComponentSpec):
    """The run's examples in; the span store and whether a backfill is meant as parameters."""

    PARAMETERS = {STORE_KEY: ExecutionParameter(type=str),
                  BACKFILL_KEY: ExecutionParameter(type=int)}
    INPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS: Dict = {}


class BackfillCheck(base_component.BaseComponent):
    """Refuses a span older than one the span store has, unless `backfill` (module docstring)."""

    SPEC_CLASS = BackfillCheckSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(BackfillCheckExecutor)

    def __init__(self, examples: types.BaseChannel, span_store: str, backfill):
        super().__init__(spec=BackfillCheckSpec(**{
            EXAMPLES_KEY: examples, STORE_KEY: span_store, BACKFILL_KEY: backfill}))


class TrainingWindowSpec(types.ComponentSpec):
    """The run's examples in; the span store and the window's length as parameters; the training
    window and the judged rows out."""

    PARAMETERS = {STORE_KEY: ExecutionParameter(type=str),
                  WINDOW_SPANS_KEY: ExecutionParameter(type=int)}
    INPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {TRAINING_KEY: ChannelParameter(type=standard_artifacts.Examples),
               JUDGED_KEY: ChannelParameter(type=standard_artifacts.Examples)}


class TrainingWindow(base_component.BaseComponent):
    """The span store's record of `examples`, and the window to train on (module docstring)."""

    SPEC_CLASS = TrainingWindowSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, span_store: str, window_spans: int):
        super().__init__(spec=TrainingWindowSpec(**{
            EXAMPLES_KEY: examples, STORE_KEY: span_store, WINDOW_SPANS_KEY: window_spans,
            TRAINING_KEY: types.Channel(type=standard_artifacts.Examples),
            JUDGED_KEY: types.Channel(type=standard_artifacts.Examples)}))
