"""The compiled KFP v2 spec, executed task by task as a KFP v2 backend runs it, on this machine.

`kubeflow_runner.py --local` compiles the pipeline on small data with a local pipeline root. The
harness walks the spec's DAG in dependency order, independent tasks side by side. For each
container task it builds the executor input (`{{$}}`) as the backend's driver does: the task's
constant parameters (a schema 2.1 `constant` goes into `inputs.parameterValues`, as the KFP 2.x
driver and Vertex AI send it; a 2.0 `constantValue` would go into the deprecated
`inputs.parameters`), its input artifacts from the upstream tasks' executor outputs, and fresh
output artifacts (a name, the type of the output definition, a URI under the pipeline root) with an
`outputFile`. It then runs the executor's own lifecycle pre-cache check, as Vertex AI does, and its
`command` + `args`, exactly as written, as a subprocess in the project directory (the image's
WORKDIR). Resolver tasks are answered as the backend answers their metadata queries: from the
artifacts of earlier tasks and runs that match the query's filter, the newest first. What this
proves and what only a cluster can: docs/kubeflow.md.
"""

import concurrent.futures
import copy
import itertools
import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
import yaml

from components.atomic_pusher import REQUEST_EXAMPLE_FILE
from components.blessing_gate import ALL_TASKS_BLESSED, VERDICT_FILE
from components.blessing_gate import COMPONENT_ID as GATE_ID
from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.evaluation import evaluator_id
from trainer_module.serving import instances_to_inputs, signature_input_dtypes
from trainer_module.settings import RAW_SIGNATURE

from helpers import SMALL_TRAINING, SPLIT_DATA

pytestmark = pytest.mark.e2e

# How Vertex AI names the artifacts of its metadata store; the resolver's queries match on it.
ARTIFACT_NAME = 'projects/0/locations/local/metadataStores/default/artifacts/{}'
_CLAUSE = re.compile(r'^(?:schema_title="(?P<title>[^"]*)"|state=LIVE|name="(?P<name>[^"]*)"|'
                     r'metadata\.(?P<key>\w+)\.number_value=(?P<number>[-\d.]+))$')
_INPUT_METADATA = re.compile(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}")


def _schema_title(artifact_type):
    if 'schemaTitle' in artifact_type:
        return artifact_type['schemaTitle']
    return yaml.safe_load(artifact_type['instanceSchema'])['title']


class MetadataStore:
    """The artifacts every executed task produced, in the order they were made: what the backend's
    metadata store answers resolver queries from."""

    def __init__(self):
        self.artifacts = []
        self._ids = itertools.count(1)

    def new_name(self):
        return ARTIFACT_NAME.format(next(self._ids))

    def query(self, expression):
        """The artifacts matching a resolver filter (the clauses the TFX compiler writes), newest
        first."""
        clauses = [_CLAUSE.match(clause.strip()) for clause in expression.split(' AND ')]
        assert all(clauses), f'a filter clause the harness does not know: {expression}'

        def matches(artifact):
            for clause in clauses:
                if clause['title'] is not None and artifact['title'] != clause['title']:
                    return False
                if clause['name'] is not None and artifact['runtime']['name'] != clause['name']:
                    return False
                if clause['key'] is not None and artifact['runtime'].get('metadata', {}).get(
                        clause['key']) != float(clause['number']):
                    return False
            return True

        return [a['runtime'] for a in reversed(self.artifacts) if matches(a)]


def _waves(tasks):
    """Task names in waves: each task after the tasks it depends on or reads from; the tasks of a
    wave depend on none of each other, and run side by side, as a backend runs them."""
    upstream = {name: set(task.get('dependentTasks', [])) | {
        source['taskOutputArtifact']['producerTask']
        for source in task.get('inputs', {}).get('artifacts', {}).values()}
        for name, task in tasks.items()}
    done, waves = set(), []
    while len(done) < len(tasks):
        ready = sorted(n for n in tasks if n not in done and upstream[n] <= done)
        assert ready, f'a cycle among {set(tasks) - done}'
        waves.append(ready)
        done.update(ready)
    return waves


def _parameters(task):
    """(parameterValues, parameters): the task's constants, in the field the driver sends them in
    for their form in the spec."""
    values, deprecated = {}, {}
    for name, spec in task.get('inputs', {}).get('parameters', {}).items():
        runtime = spec['runtimeValue']
        if 'constant' in runtime:
            values[name] = runtime['constant']
        else:
            deprecated[name] = runtime['constantValue']
    return values, deprecated


class SpecRun:
    """One run of a compiled spec: each task's executor input and outputs."""

    def __init__(self, spec, pipeline_root, run_id, store, env):
        self.spec, self.store = spec, store
        self.root = os.path.join(pipeline_root, run_id)
        self.outputs = {}  # task -> {key: [runtime artifact]}
        self.inputs = {}  # task -> its executor input
        tasks = spec['root']['dag']['tasks']
        for wave in _waves(tasks):
            containers = []
            for name in wave:
                component = spec['components'][tasks[name]['componentRef']['name']]
                executor = spec['deploymentSpec']['executors'][component['executorLabel']]
                if 'resolver' in executor:
                    self._resolve(name, tasks[name], executor['resolver'])
                else:
                    containers.append((name, tasks[name], component, executor['container'], env))
            with concurrent.futures.ThreadPoolExecutor(max(1, len(containers))) as pool:
                for future in [pool.submit(self._run_container, *args) for args in containers]:
                    future.result()

    def _input_artifacts(self, task):
        artifacts = {}
        for key, source in task.get('inputs', {}).get('artifacts', {}).items():
            producer = source['taskOutputArtifact']
            found = self.outputs[producer['producerTask']].get(producer['outputArtifactKey'], [])
            if found:  # a resolver that found nothing leaves the (optional) input out
                artifacts[key] = {'artifacts': copy.deepcopy(found)}
        return artifacts

    def _resolve(self, name, task, resolver):
        inputs = self._input_artifacts(task)
        self.outputs[name] = {}
        for key, query in resolver['outputArtifactQueries'].items():
            expression = _INPUT_METADATA.sub(
                lambda m: str(inputs[m[1]]['artifacts'][0]['metadata'][m[2]]) if m[1] in inputs
                else '', query['filter'])
            self.outputs[name][key] = self.store.query(expression)[:1]

    def _run_container(self, name, task, component, container, env):
        task_root = os.path.join(self.root, name)
        outputs = {}
        for key, definition in component.get('outputDefinitions', {}).get('artifacts', {}).items():
            outputs[key] = {'artifacts': [{
                'name': self.store.new_name(), 'type': definition['artifactType'],
                'uri': os.path.join(task_root, key), 'metadata': {}}]}
        values, deprecated = _parameters(task)
        executor_input = {
            'inputs': {'artifacts': self._input_artifacts(task),
                       **({'parameterValues': values} if values else {}),
                       **({'parameters': deprecated} if deprecated else {})},
            'outputs': {'artifacts': outputs,
                        'outputFile': os.path.join(task_root, 'executor_output.json')}}
        self.inputs[name] = executor_input
        serialized = json.dumps(executor_input)
        steps = [container.get('lifecycle', {}).get('preCacheCheck'), container]
        for step in filter(None, steps):
            command = [serialized if arg == '{{$}}' else arg
                       for arg in step['command'] + step.get('args', [])]
            assert not any('{{' in arg for arg in command), (name, command)
            process = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True,
                                     text=True, timeout=900)
            assert process.returncode == 0, \
                f'task {name} failed:\n{(process.stdout + process.stderr)[-6000:]}'
        with open(executor_input['outputs']['outputFile']) as f:
            written = json.load(f).get('artifacts', {})
        self.outputs[name] = {}
        for key, given in outputs.items():
            runtime = given['artifacts'][0]
            for made in written.get(key, {}).get('artifacts', [])[:1]:
                assert made.get('name', runtime['name']) == runtime['name'], (name, key, made)
                runtime['metadata'] = made.get('metadata', {})
            self.outputs[name][key] = [runtime]
            self.store.artifacts.append(
                {'title': _schema_title(runtime['type']), 'runtime': runtime})

    def metadata(self, task, key):
        return self.outputs[task][key][0]['metadata']


@pytest.fixture(scope='module')
def executed(tmp_path_factory, small_data):
    """(the spec, first run, second run) of the pipeline compiled on the small data and executed
    twice into one pipeline root and metadata store."""
    tmp = tmp_path_factory.mktemp('kfp_executed')
    root, serving = str(tmp / 'pipeline_root'), str(tmp / 'serving_model')
    compiled = subprocess.run(
        [sys.executable, 'kubeflow_runner.py', '--local', '--output', str(tmp / 'pipeline.yaml'),
         '--image', 'local', '--pipeline-root', root, '--serving-dir', serving,
         '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    with open(tmp / 'pipeline.yaml') as f:
        spec = yaml.safe_load(f)
    # The image's environment (Dockerfile): its `python`, the project as WORKDIR, legacy Keras.
    env = {**os.environ, 'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'],
           'TF_USE_LEGACY_KERAS': '1'}
    store = MetadataStore()
    first = SpecRun(spec, root, 'run-1', store, env)
    second = SpecRun(spec, root, 'run-2', store, env)
    return spec, first, second, serving


def _container_tasks(spec):
    tasks = spec['root']['dag']['tasks']
    return [name for name, task in tasks.items()
            if 'container' in spec['deploymentSpec']['executors'][
                spec['components'][task['componentRef']['name']]['executorLabel']]]


def test_the_spec_sends_parameters_as_kfp_2_and_vertex_do(executed):
    spec, first, _, _ = executed
    assert spec['schemaVersion'] == '2.1.0'
    for name in _container_tasks(spec):
        args = spec['deploymentSpec']['executors'][spec['components'][
            spec['root']['dag']['tasks'][name]['componentRef']['name']]['executorLabel']][
                'container']['args']
        # Without it, TFX's entrypoint reads the deprecated inputs.parameters, which neither sends.
        assert '--json_serialized_inputs_spec_args' in args, name
        assert 'parameters' not in first.inputs[name]['inputs'], name


def test_every_task_of_both_runs_wrote_its_artifacts_and_their_metadata(executed):
    """Each output artifact of each container task holds files under its URI, and one with
    splits (as its metadata names them, which the next task reads) a directory per split."""
    spec, first, second, _ = executed
    # The first run's drift check has no baseline yet: TFX's validator writes no anomalies then.
    for run, without_files in ((first, [('DriftValidator', 'anomalies')]), (second, [])):
        assert set(run.outputs) == set(spec['root']['dag']['tasks'])
        empty = []
        for name in _container_tasks(spec):
            for key, (artifact,) in run.outputs[name].items():
                if not any(files for _, _, files in os.walk(artifact['uri'])):
                    empty.append((name, key))
                splits = artifact['metadata'].get('split_names')
                if splits and (name, key) not in without_files:
                    # Split-<split>, or SplitPair-<split>_<baseline split> of a drift check.
                    assert sorted(json.loads(splits)) == sorted(
                        entry.split('-', 1)[1] for entry in os.listdir(artifact['uri'])
                        if entry.startswith(('Split-', 'SplitPair-'))), (name, key)
        assert empty == without_files


def test_first_run_blesses_and_pushes_a_model_that_scores_raw_rows(executed):
    _, first, _, serving = executed
    for task in PipelineConfig().task_names:
        assert first.metadata(evaluator_id(task), 'blessing')['blessed'] == 1.0, task
    blessing = first.metadata(GATE_ID, 'blessing')
    assert blessing['blessed'] == 1.0 and blessing[ALL_TASKS_BLESSED] == 1.0
    # The model's artifact name, which the baseline query's second step matches on.
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


def test_first_run_resolves_no_baseline_and_no_previous_statistics(executed):
    _, first, _, _ = executed
    assert first.outputs['previous_statistics_resolver']['statistics'] == []
    for task in PipelineConfig().task_names:
        assert 'baseline_model' not in first.inputs[evaluator_id(task)]['inputs']['artifacts']


def test_second_run_takes_the_first_model_the_gate_blessed_as_baseline(executed):
    _, first, second, _ = executed
    first_model = first.outputs['Trainer']['model'][0]
    for task in PipelineConfig().task_names:
        baseline = second.inputs[evaluator_id(task)]['inputs']['artifacts']['baseline_model']
        assert [a['uri'] for a in baseline['artifacts']] == [first_model['uri']], task
        # Its evaluation compared the candidate with that baseline.
        assert second.metadata(evaluator_id(task), 'blessing').get('baseline_model') \
            == first_model['uri'], task
    previous = second.outputs['previous_statistics_resolver']['statistics']
    assert [a['uri'] for a in previous] == [
        first.outputs['AnomalyCheck']['checked_statistics'][0]['uri']]


def test_the_baseline_query_skips_blessings_of_single_evaluators(executed):
    """Evaluator blessings carry `blessed=1` too; only the gate's also carry all_tasks_blessed."""
    spec, first, _, _ = executed
    query = next(q['filter'] for e in spec['deploymentSpec']['executors'].values()
                 if 'resolver' in e for q in e['resolver']['outputArtifactQueries'].values()
                 if 'tfx.ModelBlessing' in q['filter'])
    found = first.store.query(query)
    assert found and all(a['metadata'].get(ALL_TASKS_BLESSED) == 1.0 for a in found)
    unfiltered = first.store.query(query.replace(
        f' AND metadata.{ALL_TASKS_BLESSED}.number_value=1', ''))
    assert len(unfiltered) > len(found)
