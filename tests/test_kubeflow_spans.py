"""Continuous training through the compiled spec: two spans in order, then an older one refused.

The pipeline is compiled for open-source Kubeflow Pipelines (`--backend kfp`, the backend whose
every task runs through our entrypoint) on data by span, with a window of two spans and warm
start, and executed as that backend runs it (tests/kfp_harness.py) into one pipeline root, span
store, serving directory and cache:
1. `range_config` names span 1 though span 2 is there: the span is a parameter of each run. No span
   is recorded yet: the run trains and judges on span 1's own splits, and pushes.
2. no parameter, as a recurring run: the newest span, 2. It trains on span 1 as run 1 read it (no
   task reads span 1's CSVs again), judges on every row of span 2, and starts from the model that
   serves.
3. span 1 again, without `backfill`: refused before anything trains, though every task of span 1
   would come from the cache.
"""

import json
import os

import pytest
import tensorflow as tf

from components.serving_baseline import COMPONENT_ID as SERVING_BASELINE_ID
from components.serving_baseline import SERVING_VERSION_KEY
from components.training_window import BACKFILL_CHECK_ID, WINDOW_PROPERTY
from components.training_window import COMPONENT_ID as TRAINING_WINDOW_ID
from pipeline.datasets import ecommerce
from pipeline.evaluation import evaluator_id
from pipeline.pipeline import RANGE_CONFIG_PARAMETER

from helpers import SMALL_TRAINING
from kfp_harness import DIALECTS, MetadataStore, SpecRun, compile_spec, image_python

pytestmark = pytest.mark.e2e

ROWS_PER_SPAN = 700
# The examples' span as TFX's entrypoint writes it: a custom property named as a property of the
# type (Examples' `span`, which ExampleGen leaves unset) is prefixed.
SPAN_METADATA = 'custom:span'
# No drift bounds: a span's rows drift from the last by chance alone.
BY_SPAN = ['--set', 'csv_pattern=span-{SPAN}/*.csv', '--set', 'training.window_spans=2',
           '--set', 'drift=[]', '--set', 'training.warm_start=true']


def _span(number):
    return json.dumps({'static_range': {'start_span_number': number,
                                        'end_span_number': number}})


@pytest.fixture(scope='module')
def runs(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('kfp_spans')
    data = tmp / 'data'
    for span in (1, 2):
        ecommerce.write(str(data / f'span-{span}'), rows=ROWS_PER_SPAN, seed=30 + span)
    root, serving = str(tmp / 'pipeline_root'), str(tmp / 'serving_model')
    python = image_python()
    request.addfinalizer(python.close)
    spec = compile_spec(tmp / 'pipeline.yaml', 'kfp', root, serving, '--data', str(data),
                        *BY_SPAN, *SMALL_TRAINING)
    store = MetadataStore(DIALECTS['kfp'])
    recorded = []  # the span store's records after each run

    def run(number, **kwargs):
        done = SpecRun(spec, root, f'run-{number}', store, python, serving, **kwargs)
        recorded.append(sorted(os.listdir(os.path.join(root, 'span_store'))))
        return done

    first = run(1, parameters={RANGE_CONFIG_PARAMETER: _span(1)})
    newest = run(2)
    older = run(3, parameters={RANGE_CONFIG_PARAMETER: _span(1)}, may_fail=True)
    return spec, recorded, first, newest, older


def _records(uri, split):
    directory = os.path.join(uri, f'Split-{split}')
    return sum(1 for name in os.listdir(directory) for _ in tf.data.TFRecordDataset(
        os.path.join(directory, name), 'GZIP'))


def test_the_span_and_the_backfill_are_parameters_of_each_run_with_defaults(runs):
    spec, *_ = runs
    parameters = spec['root']['inputDefinitions']['parameters']
    assert parameters[RANGE_CONFIG_PARAMETER]['defaultValue'] == ''
    assert parameters['backfill']['defaultValue'] == 0
    assert not spec['root']['dag']['tasks'][BACKFILL_CHECK_ID]['cachingOptions']['enableCache']


def test_the_first_run_reads_the_span_it_names_and_trains_on_its_own_splits(runs):
    _, recorded, first, *_ = runs
    examples = first.outputs['CsvExampleGen']['examples'][0]
    assert examples['metadata'][SPAN_METADATA] == 1
    window = first.outputs[TRAINING_WINDOW_ID]
    assert json.loads(window['training'][0]['metadata'][WINDOW_PROPERTY]) == [1]
    assert recorded[0] == ['span-1.json']
    # Its own splits: train and validation to learn, eval to judge.
    for split in ('train', 'validation'):
        assert _records(window['training'][0]['uri'], split) == _records(examples['uri'], split)
    assert _records(window['judged'][0]['uri'], 'eval') == _records(examples['uri'], 'eval')
    assert first.metadata('Pusher', 'pushed_model')['pushed'] == 1.0


def test_the_newest_span_trains_on_the_window_as_read_and_judges_on_all_its_rows(runs):
    _, recorded, first, newest, _ = runs
    examples = newest.outputs['CsvExampleGen']['examples'][0]
    assert examples['metadata'][SPAN_METADATA] == 2
    window = newest.outputs[TRAINING_WINDOW_ID]
    assert json.loads(window['training'][0]['metadata'][WINDOW_PROPERTY]) == [1]
    assert recorded[1] == ['span-1.json', 'span-2.json']
    # Span 1's train and validation rows, from run 1's examples; every row of span 2 judged.
    span_1 = first.outputs['CsvExampleGen']['examples'][0]['uri']
    for split in ('train', 'validation'):
        assert _records(window['training'][0]['uri'], split) == _records(span_1, split)
    assert _records(window['judged'][0]['uri'], 'eval') == ROWS_PER_SPAN
    assert newest.inputs['Transform']['inputs']['artifacts']['examples']['artifacts'][0][
        'uri'] == window['training'][0]['uri']
    for task in ('ctr', 'ctcvr'):
        assert newest.inputs[evaluator_id(task)]['inputs']['artifacts']['examples'][
            'artifacts'][0]['uri'] == window['judged'][0]['uri']
    # Warm: from the model that serves, which run 1 pushed.
    base = newest.inputs['Trainer']['inputs']['artifacts']['base_model']['artifacts'][0]
    assert base['uri'] == newest.outputs[SERVING_BASELINE_ID]['model'][0]['uri']
    assert newest.metadata(SERVING_BASELINE_ID, 'model')[SERVING_VERSION_KEY] == \
        first.metadata('Pusher', 'pushed_model')['pushed_destination']


def test_an_older_span_is_refused_without_backfill_before_anything_trains(runs):
    _, recorded, _, newest, older = runs
    assert recorded[2] == recorded[1]
    assert set(older.failed) == {BACKFILL_CHECK_ID}
    assert 'span 1 is older than span 2, which an earlier run read and checked' in \
        older.failed[BACKFILL_CHECK_ID]
    assert 'pipeline parameter backfill=1' in older.failed[BACKFILL_CHECK_ID]
    assert 'Trainer' not in older.outputs and 'Pusher' not in older.outputs
    assert older.serving_versions == newest.serving_versions
