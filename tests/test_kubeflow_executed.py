"""The compiled KFP v2 spec, executed task by task as each backend runs it, on this machine.

`kubeflow_runner.py --local` compiles the pipeline on small data with a local pipeline root, once
per backend: `--backend vertex` (Vertex AI Pipelines) and `--backend kfp` (open-source Kubeflow
Pipelines 2.x), and executed as each backend runs it (tests/kfp_harness.py). Each backend's spec
runs twice into one pipeline root, metadata store and cache: on the data, and again with nothing
new. What this proves and what only a cluster can: docs/kubeflow.md.
"""

import json
import os

import pytest
import tensorflow as tf

from components.atomic_pusher import REQUEST_EXAMPLE_FILE
from components.blessing_gate import ALL_TASKS_BLESSED, VERDICT_FILE
from components.blessing_gate import COMPONENT_ID as GATE_ID
from components.serving_baseline import COMPONENT_ID as SERVING_BASELINE_ID
from components.serving_baseline import SERVING_VERSION_KEY
from pipeline.config import PipelineConfig
from pipeline.evaluation import evaluator_id
from trainer_module.serving import instances_to_inputs, signature_input_dtypes
from trainer_module.settings import RAW_SIGNATURE

from helpers import SMALL_TRAINING, SPLIT_DATA
from kfp_harness import (
    DIALECTS,
    MetadataStore,
    SpecRun,
    compile_spec,
    container_tasks,
    executor,
    image_python,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope='module', params=sorted(DIALECTS))
def executed(request, tmp_path_factory, small_data):
    """(the dialect, the spec, two runs, the serving directory): the pipeline compiled for the
    dialect's backend on the small data and executed twice into one pipeline root, metadata store
    and cache, the second time with nothing new."""
    dialect = DIALECTS[request.param]
    tmp = tmp_path_factory.mktemp(f'kfp_executed_{dialect.backend}')
    root, serving = str(tmp / 'pipeline_root'), str(tmp / 'serving_model')
    python = image_python()
    request.addfinalizer(python.close)
    spec = compile_spec(tmp / 'pipeline.yaml', dialect.backend, root, serving,
                        '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING)
    store = MetadataStore(dialect)
    runs = [SpecRun(spec, root, f'run-{number}', store, python, serving) for number in (1, 2)]
    return dialect, spec, runs, serving


def test_the_spec_sends_parameters_as_kfp_2_and_vertex_do(executed):
    _, spec, (first, *_), _ = executed
    assert spec['schemaVersion'] == '2.1.0'
    for name in container_tasks(spec):
        # Without it, TFX's entrypoint reads the deprecated inputs.parameters, which neither sends.
        assert '--json_serialized_inputs_spec_args' in executor(spec, name)['container']['args']
        assert 'parameters' not in first.inputs[name]['inputs'], name


def test_every_task_of_every_run_wrote_its_artifacts_and_their_metadata(executed):
    """Each output artifact of each container task that ran holds files under its URI, and one
    with splits (as its metadata names them, which the next task reads) a directory per split;
    but for what has nothing to hold: the first run's drift check (no baseline yet: TFX's
    validator writes no anomalies then) and baselines from an empty serving directory, and a
    push that did not push."""
    dialect, spec, runs, _ = executed
    for number, run in enumerate(runs, 1):
        assert set(run.outputs) == set(spec['root']['dag']['tasks'])
        without_files = set()
        if number == 1:
            without_files.add(('DriftValidator', 'anomalies'))
            if not dialect.runs_resolvers:
                without_files |= {(SERVING_BASELINE_ID, 'model'), (SERVING_BASELINE_ID, 'statistics')}
        if run.metadata('Pusher', 'pushed_model')['pushed'] == 0:
            without_files.add(('Pusher', 'pushed_model'))
        empty = set()
        for name in set(container_tasks(spec)) - run.cached:
            for key, (artifact,) in run.outputs[name].items():
                if not any(files for _, _, files in os.walk(artifact['uri'])):
                    empty.add((name, key))
                splits = artifact['metadata'].get('split_names')
                if splits and (name, key) not in without_files:
                    # Split-<split>, or SplitPair-<split>_<baseline split> of a drift check.
                    assert sorted(json.loads(splits)) == sorted(
                        entry.split('-', 1)[1] for entry in os.listdir(artifact['uri'])
                        if entry.startswith(('Split-', 'SplitPair-'))), (name, key)
        assert empty == {(name, key) for name, key in without_files if name not in run.cached}


def test_first_run_blesses_and_pushes_a_model_that_scores_raw_rows(executed):
    _, _, (first, *_), serving = executed
    for task in PipelineConfig().task_names:
        assert first.metadata(evaluator_id(task), 'blessing')['blessed'] == 1.0, task
    blessing = first.metadata(GATE_ID, 'blessing')
    assert blessing['blessed'] == 1.0 and blessing[ALL_TASKS_BLESSED] == 1.0
    # The model's artifact name, which Vertex AI's baseline query's second step matches on.
    assert blessing['current_model_id'] == first.outputs['Trainer']['model'][0]['name']
    with open(os.path.join(first.outputs[GATE_ID]['blessing'][0]['uri'], VERDICT_FILE)) as f:
        assert json.load(f)['blessed'] is True
    pushed = first.metadata('Pusher', 'pushed_model')
    assert pushed['pushed'] == 1.0
    destination = pushed['pushed_destination']
    assert os.path.dirname(destination) == serving
    with open(os.path.join(destination, REQUEST_EXAMPLE_FILE)) as f:
        body = json.load(f)
    signature = tf.saved_model.load(destination).signatures[body['signature_name']]
    scores = signature(**instances_to_inputs(body['instances'], signature_input_dtypes(signature)))
    assert body['signature_name'] == RAW_SIGNATURE
    assert set(scores) == set(PipelineConfig().task_names)
    assert all(values.shape == (2, 1) for values in scores.values())


def test_first_run_judges_without_a_baseline_model_or_statistics(executed):
    dialect, _, (first, *_), _ = executed
    for task in PipelineConfig().task_names:
        assert 'baseline_model' not in first.metadata(evaluator_id(task), 'blessing'), task
    if dialect.runs_resolvers:
        assert first.outputs['previous_statistics_resolver']['statistics'] == []
        for task in PipelineConfig().task_names:
            assert 'baseline_model' not in first.inputs[evaluator_id(task)]['inputs']['artifacts']


def _files(directory):
    return sorted((os.path.relpath(os.path.join(path, name), directory), os.path.getsize(
        os.path.join(path, name))) for path, _, names in os.walk(directory) for name in names)


def test_second_run_judges_against_the_first_model_and_its_data(executed):
    dialect, _, (first, second), _ = executed
    first_model = first.outputs['Trainer']['model'][0]
    checked = first.outputs['AnomalyCheck']['checked_statistics'][0]['uri']
    if dialect.runs_resolvers:
        for task in PipelineConfig().task_names:
            baseline = second.inputs[evaluator_id(task)]['inputs']['artifacts']['baseline_model']
            assert [a['uri'] for a in baseline['artifacts']] == [first_model['uri']], task
            # Its evaluation compared the candidate with that baseline.
            assert second.metadata(evaluator_id(task), 'blessing').get('baseline_model') \
                == first_model['uri'], task
        previous = second.outputs['previous_statistics_resolver']['statistics']
        assert [a['uri'] for a in previous] == [checked]
        return
    # From the serving directory: the version the first run pushed, and the statistics beside it.
    model, statistics = (second.outputs[SERVING_BASELINE_ID][key][0]
                         for key in ('model', 'statistics'))
    assert model['metadata'][SERVING_VERSION_KEY] == first.metadata(
        'Pusher', 'pushed_model')['pushed_destination']
    for task in PipelineConfig().task_names:
        assert second.metadata(evaluator_id(task), 'blessing').get('baseline_model') \
            == model['uri'], task
    assert _files(statistics['uri']) == _files(checked)
    assert second.inputs['DriftValidator']['inputs']['artifacts']['baseline_statistics'][
        'artifacts'][0]['uri'] == statistics['uri']


def test_a_run_with_nothing_new_trains_nothing_and_pushes_nothing(executed):
    dialect, spec, (first, second), _ = executed
    assert {'CsvExampleGen', 'Transform', 'Trainer'} <= second.cached
    assert second.outputs['Trainer'] == first.outputs['Trainer']
    assert second.serving_versions == first.serving_versions
    if 'Pusher' not in second.cached:
        assert second.metadata('Pusher', 'pushed_model')['pushed'] == 0.0
    # A check that a backend never caches runs every time.
    never_cached = {name for name, task in spec['root']['dag']['tasks'].items()
                    if not task.get('cachingOptions', {}).get('enableCache')
                    and 'container' in executor(spec, name)}
    assert not never_cached & second.cached
    if dialect.backend == 'kfp':
        assert never_cached == {'CsvExampleGen-pre-cache-check',
                                f'{SERVING_BASELINE_ID}-pre-cache-check'}


def test_the_baseline_query_skips_blessings_of_single_evaluators(executed):
    """Evaluator blessings carry `blessed=1` too; only the gate's also carry all_tasks_blessed."""
    dialect, spec, (first, *_), _ = executed
    if not dialect.runs_resolvers:
        assert not [name for name in spec['root']['dag']['tasks']
                    if 'resolver' in executor(spec, name)]
        return
    query = next(q['filter'] for e in spec['deploymentSpec']['executors'].values()
                 if 'resolver' in e for q in e['resolver']['outputArtifactQueries'].values()
                 if 'tfx.ModelBlessing' in q['filter'])
    found = first.store.query(query)
    assert found and all(a['metadata'].get(ALL_TASKS_BLESSED) == 1.0 for a in found)
    unfiltered = first.store.query(query.replace(
        f' AND metadata.{ALL_TASKS_BLESSED}.number_value=1', ''))
    assert len(unfiltered) > len(found)
