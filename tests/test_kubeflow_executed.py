"""The compiled KFP v2 spec, executed task by task as each backend runs it, on this machine.

`kubeflow_runner.py --local` compiles the pipeline on small data with a local pipeline root, once
per backend: `--backend vertex` (Vertex AI Pipelines) and `--backend kfp` (open-source Kubeflow
Pipelines 2.x). The harness walks the spec's DAG in dependency order, independent tasks side by
side. For each container task it builds the executor input (`{{$}}`) as that backend's driver does
(`Dialect`: each rule with its source), looks the task up in the backend's cache, and otherwise
runs the task's `command` + `args`, exactly as written, as a process of its own in the project
directory (the image's WORKDIR): a fork of a Python that has imported the libraries every task
imports (`forked_python.py`), which runs the command's module as `python -m` does. Resolver tasks,
which only Vertex AI runs, are answered as it answers their metadata queries: from the artifacts
of earlier tasks and runs that match the query's filter, the newest first. Each backend's spec runs
twice into one pipeline root, metadata store and cache: on the data, and again with nothing new.
What this proves and what only a cluster can: docs/kubeflow.md.
"""

import concurrent.futures
import copy
import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
from typing import Callable

import pytest
import tensorflow as tf
import yaml

from components.atomic_pusher import REQUEST_EXAMPLE_FILE
from components.blessing_gate import ALL_TASKS_BLESSED, VERDICT_FILE
from components.blessing_gate import COMPONENT_ID as GATE_ID
from components.serving_baseline import COMPONENT_ID as SERVING_BASELINE_ID
from components.serving_baseline import SERVING_VERSION_KEY
from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.evaluation import evaluator_id
from trainer_module.serving import instances_to_inputs, signature_input_dtypes
from trainer_module.settings import RAW_SIGNATURE

from forked_python import ForkServer
from helpers import SMALL_TRAINING, SPLIT_DATA

pytestmark = pytest.mark.e2e

_CLAUSE = re.compile(r'^(?:schema_title="(?P<title>[^"]*)"|state=LIVE|name="(?P<name>[^"]*)"|'
                     r'metadata\.(?P<key>\w+)\.number_value=(?P<number>[-\d.]+))$')
_INPUT_METADATA = re.compile(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}")


def _from_vertex_store(artifact, key):
    """An upstream artifact as Vertex AI passes it on: as the producer's executor output named
    it, with the type of the producer's output definition and the metadata it wrote."""
    return copy.deepcopy(artifact)


def _stored_in_ml_metadata(value):
    """A metadata value as the open-source launcher stores it in ML Metadata and the driver reads
    it back (backend/src/v2/metadata/converter.go, StructValueToMLMDValue and toRuntimeArtifact):
    numbers as doubles, booleans as 1 and 0, lists and structs wrapped, never unwrapped."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, list):
        return {'list': value}
    if isinstance(value, dict):
        return {'struct': value}
    return value


def _from_open_source_store(artifact, key):
    """An upstream artifact as the open-source driver passes it on, read back from ML Metadata
    (backend/src/v2/metadata/client.go, GetOutputArtifactsByExecutionId, whose schema is always
    "", and OutputArtifact.ToRuntimeArtifact): named by its ML Metadata id, its type an empty
    instance schema, its metadata the stored custom properties, with the two the launcher's
    RecordArtifact adds (2.3.0)."""
    metadata = {name: _stored_in_ml_metadata(value)
                for name, value in artifact.get('metadata', {}).items()}
    metadata.update(display_name=key, store_session_info=json.dumps({'Provider': 'minio'}))
    return {'name': artifact['name'], 'uri': artifact['uri'], 'type': {'instanceSchema': ''},
            'metadata': metadata}


@dataclasses.dataclass(frozen=True)
class Dialect:
    """How a backend's driver and launcher run a container task, rule by rule."""

    backend: str
    # The name its metadata store gives its n-th artifact.
    artifact_name: Callable[[int], str]
    # Whether the executor input names the output artifacts (by their names in the store).
    names_outputs: bool
    # An upstream artifact, and its producer's output key, as the driver hands it to a consumer.
    upstream: Callable[[dict, str], dict]
    # The executor input's `outputFile`, for the task's directory.
    output_file: Callable[[str], str]
    # The file of an output parameter, for the task's directory and the parameter's name.
    parameter_file: Callable[[str, str], str]
    # Whether it runs a container's `lifecycle.preCacheCheck`, before looking up its cache.
    runs_pre_cache_check: bool
    # Whether it runs resolver tasks (answers their metadata queries).
    runs_resolvers: bool


DIALECTS = {
    # Vertex AI names artifacts as resources of its metadata store (what the resolver queries
    # match on), also in the executor input, writes the executor output beside the outputs, runs
    # TFX's pre-cache check of the ExampleGen, whose findings join the cache key, and answers
    # resolver tasks.
    'vertex': Dialect(
        'vertex', 'projects/0/locations/local/metadataStores/default/artifacts/{}'.format,
        names_outputs=True, upstream=_from_vertex_store,
        output_file=lambda task_dir: os.path.join(task_dir, 'executor_output.json'),
        parameter_file=lambda task_dir, key: os.path.join(task_dir, 'parameters', key),
        runs_pre_cache_check=True, runs_resolvers=True),
    # Open-source Kubeflow Pipelines 2.x (2.0.5 to 2.3.0 and on; the lines cited are 2.3.0's):
    # its Argo compiler refuses resolver executors (backend/src/v2/compiler/argocompiler/dag.go,
    # "resolver executors not implemented"); its driver leaves output artifacts unnamed
    # (driver.go, provisionOutputs), never runs a pre-cache check (nothing in backend/src/v2
    # reads it), and points `outputFile` at the pod's /tmp/kfp_outputs/output_metadata.json
    # (launcher_v2.go) and each output parameter at /tmp/kfp/outputs/<name> (driver.go).
    'kfp': Dialect(
        'kfp', str, names_outputs=False, upstream=_from_open_source_store,
        output_file=lambda task_dir: os.path.join(task_dir, 'pod', 'tmp', 'kfp_outputs',
                                                  'output_metadata.json'),
        parameter_file=lambda task_dir, key: os.path.join(task_dir, 'pod', 'tmp', 'kfp',
                                                          'outputs', key),
        runs_pre_cache_check=False, runs_resolvers=False),
}


def _schema_title(artifact_type):
    if 'schemaTitle' in artifact_type:
        return artifact_type['schemaTitle']
    return yaml.safe_load(artifact_type['instanceSchema'])['title']


class MetadataStore:
    """The artifacts every executed task produced, in the order they were made: what the backend's
    metadata store answers resolver queries from; and the backend's cache of executed tasks."""

    def __init__(self, dialect):
        self.dialect = dialect
        self.artifacts = []
        self.cache = {}
        self._ids = itertools.count(1)

    def new_name(self):
        return self.dialect.artifact_name(next(self._ids))

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


class SpecRun:
    """One run of a compiled spec: each task's executor input and outputs, which tasks came from
    the cache, and the serving directory's versions after it."""

    def __init__(self, spec, pipeline_root, run_id, store, python, serving):
        self.spec, self.store, self.dialect, self.python = spec, store, store.dialect, python
        self.root = os.path.join(pipeline_root, run_id)
        self.outputs = {}  # task -> {key: [runtime artifact]}
        self.parameters = {}  # task -> {output parameter: value}
        self.inputs = {}  # task -> its executor input
        self.cached = set()
        tasks = spec['root']['dag']['tasks']
        for wave in _waves(tasks):
            containers = []
            for name in wave:
                component = spec['components'][tasks[name]['componentRef']['name']]
                executor = spec['deploymentSpec']['executors'][component['executorLabel']]
                if 'resolver' in executor:
                    assert self.dialect.runs_resolvers, \
                        f'{self.dialect.backend} refuses resolver task {name}'
                    self._resolve(name, tasks[name], executor['resolver'])
                else:
                    containers.append((name, tasks[name], component, executor['container']))
            with concurrent.futures.ThreadPoolExecutor(max(1, len(containers))) as pool:
                for future in [pool.submit(self._run_container, *args) for args in containers]:
                    future.result()
        self.serving_versions = sorted(os.listdir(serving)) if os.path.isdir(serving) else []

    def _input_artifacts(self, task):
        artifacts = {}
        for key, source in task.get('inputs', {}).get('artifacts', {}).items():
            producer = source['taskOutputArtifact']
            found = self.outputs[producer['producerTask']].get(producer['outputArtifactKey'], [])
            if found:  # a resolver that found nothing leaves the (optional) input out
                artifacts[key] = {'artifacts': [self.dialect.upstream(a, producer[
                    'outputArtifactKey']) for a in found]}
        return artifacts

    def _parameters(self, task):
        """(parameterValues, parameters): the task's constants and upstream output parameters,
        in the field the driver sends them in for their form in the spec."""
        values, deprecated = {}, {}
        for name, spec in task.get('inputs', {}).get('parameters', {}).items():
            if 'taskOutputParameter' in spec:
                source = spec['taskOutputParameter']
                values[name] = self.parameters[source['producerTask']][source['outputParameterKey']]
            elif 'constant' in spec['runtimeValue']:
                values[name] = spec['runtimeValue']['constant']
            else:
                deprecated[name] = spec['runtimeValue']['constantValue']
        return values, deprecated

    def _resolve(self, name, task, resolver):
        inputs = self._input_artifacts(task)
        self.outputs[name] = {}
        for key, query in resolver['outputArtifactQueries'].items():
            expression = _INPUT_METADATA.sub(
                lambda m: str(inputs[m[1]]['artifacts'][0]['metadata'][m[2]]) if m[1] in inputs
                else '', query['filter'])
            self.outputs[name][key] = self.store.query(expression)[:1]

    def _command(self, name, step, executor_input):
        command = [json.dumps(executor_input) if arg == '{{$}}' else arg
                   for arg in step['command'] + step.get('args', [])]
        assert not any('{{' in arg for arg in command), (name, command)
        return command

    def _execute(self, name, command):
        status, output = self.python.run(command, cwd=PROJECT_DIR)
        assert status == 0, f'task {name} failed:\n{output[-6000:]}'

    def _run_container(self, name, task, component, container):
        task_dir = os.path.join(self.root, name)
        definitions = component.get('outputDefinitions', {})
        outputs = {key: {'artifacts': [{
            'name': self.store.new_name() if self.dialect.names_outputs else '',
            'type': definition['artifactType'], 'uri': os.path.join(task_dir, key),
            'metadata': {}}]}
            for key, definition in definitions.get('artifacts', {}).items()}
        values, deprecated = self._parameters(task)
        executor_input = {
            'inputs': {'artifacts': self._input_artifacts(task),
                       **({'parameterValues': values} if values else {}),
                       **({'parameters': deprecated} if deprecated else {})},
            'outputs': {'artifacts': outputs,
                        'outputFile': self.dialect.output_file(task_dir),
                        **({'parameters': {
                            key: {'outputFile': self.dialect.parameter_file(task_dir, key)}
                            for key in definitions['parameters']}}
                           if definitions.get('parameters') else {})}}
        self.inputs[name] = executor_input
        checked = {}
        check = container.get('lifecycle', {}).get('preCacheCheck')
        if check and self.dialect.runs_pre_cache_check:
            self._execute(name, self._command(name, check, executor_input))
            with open(executor_input['outputs']['outputFile']) as f:
                checked = json.load(f).get('parameterValues', {})
        # The cache key: the inputs' artifact names and parameter values, the outputs' definitions
        # and the container (and on Vertex AI what the pre-cache check found).
        cache_key = json.dumps([{k: [a['name'] for a in v['artifacts']]
                           for k, v in executor_input['inputs']['artifacts'].items()},
                          values, deprecated, definitions, container, checked], sort_keys=True)
        if task.get('cachingOptions', {}).get('enableCache') and cache_key in self.store.cache:
            self.outputs[name], self.parameters[name] = self.store.cache[cache_key]
            self.cached.add(name)
            return
        self._execute(name, self._command(name, container, executor_input))
        with open(executor_input['outputs']['outputFile']) as f:
            written = json.load(f)
        self.parameters[name] = {key: written['parameterValues'][key]
                                 for key in definitions.get('parameters', {})}
        self.outputs[name] = {}
        for key, given in outputs.items():
            runtime = given['artifacts'][0]
            for made in written.get('artifacts', {}).get(key, {}).get('artifacts', [])[:1]:
                assert made.get('name', runtime['name']) == runtime['name'], (name, key, made)
                runtime['metadata'] = made.get('metadata', {})
            runtime['name'] = runtime['name'] or self.store.new_name()
            self.outputs[name][key] = [runtime]
            self.store.artifacts.append(
                {'title': _schema_title(runtime['type']), 'runtime': runtime})
        self.store.cache[cache_key] = (self.outputs[name], self.parameters[name])

    def metadata(self, task, key):
        return self.outputs[task][key][0]['metadata']


@pytest.fixture(scope='module', params=sorted(DIALECTS))
def executed(request, tmp_path_factory, small_data):
    """(the dialect, the spec, two runs, the serving directory): the pipeline compiled for the
    dialect's backend on the small data and executed twice into one pipeline root, metadata store
    and cache, the second time with nothing new."""
    dialect = DIALECTS[request.param]
    tmp = tmp_path_factory.mktemp(f'kfp_executed_{dialect.backend}')
    root, serving = str(tmp / 'pipeline_root'), str(tmp / 'serving_model')
    # The image's environment (Dockerfile): its `python`, the project as WORKDIR, legacy Keras.
    python = ForkServer({**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'PATH': os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ['PATH']])})
    request.addfinalizer(python.close)
    compiled = subprocess.run(
        [sys.executable, 'kubeflow_runner.py', '--local', '--backend', dialect.backend,
         '--output', str(tmp / 'pipeline.yaml'), '--image', 'local', '--pipeline-root', root,
         '--serving-dir', serving, '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    with open(tmp / 'pipeline.yaml') as f:
        spec = yaml.safe_load(f)
    store = MetadataStore(dialect)
    runs = [SpecRun(spec, root, f'run-{number}', store, python, serving) for number in (1, 2)]
    return dialect, spec, runs, serving


def _executor(spec, name):
    return spec['deploymentSpec']['executors'][
        spec['components'][spec['root']['dag']['tasks'][name]['componentRef']['name']][
            'executorLabel']]


def _container_tasks(spec):
    return [name for name in spec['root']['dag']['tasks'] if 'container' in _executor(spec, name)]


def test_the_spec_sends_parameters_as_kfp_2_and_vertex_do(executed):
    _, spec, (first, *_), _ = executed
    assert spec['schemaVersion'] == '2.1.0'
    for name in _container_tasks(spec):
        # Without it, TFX's entrypoint reads the deprecated inputs.parameters, which neither sends.
        assert '--json_serialized_inputs_spec_args' in _executor(spec, name)['container']['args']
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
        for name in set(_container_tasks(spec)) - run.cached:
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
                    and 'container' in _executor(spec, name)}
    assert not never_cached & second.cached
    if dialect.backend == 'kfp':
        assert never_cached == {'CsvExampleGen-pre-cache-check',
                                f'{SERVING_BASELINE_ID}-pre-cache-check'}


def test_the_baseline_query_skips_blessings_of_single_evaluators(executed):
    """Evaluator blessings carry `blessed=1` too; only the gate's also carry all_tasks_blessed."""
    dialect, spec, (first, *_), _ = executed
    if not dialect.runs_resolvers:
        assert not [name for name in spec['root']['dag']['tasks']
                    if 'resolver' in _executor(spec, name)]
        return
    query = next(q['filter'] for e in spec['deploymentSpec']['executors'].values()
                 if 'resolver' in e for q in e['resolver']['outputArtifactQueries'].values()
                 if 'tfx.ModelBlessing' in q['filter'])
    found = first.store.query(query)
    assert found and all(a['metadata'].get(ALL_TASKS_BLESSED) == 1.0 for a in found)
    unfiltered = first.store.query(query.replace(
        f' AND metadata.{ALL_TASKS_BLESSED}.number_value=1', ''))
    assert len(unfiltered) > len(found)
