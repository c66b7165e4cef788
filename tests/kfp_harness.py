"""The harness that executes a compiled KFP v2 spec task by task as each backend runs it, on this
machine (tests/test_kubeflow_executed.py says what it proves). `SpecRun` walks the spec's DAG in
dependency order, independent tasks side by side. For each container task it builds the executor
input (`{{$}}`) as that backend's driver does (`Dialect`: each rule with its source), looks the
task up in the backend's cache, and otherwise runs the task's `command` + `args`, exactly as
written, as a process of its own in the project directory (the image's WORKDIR): a fork of a
Python that has imported the libraries every task imports (`forked_python.py`), which runs the
command's module as `python -m` does. Resolver tasks, which only Vertex AI runs, are answered as it
answers their metadata queries: from the artifacts of earlier tasks and runs that match the
query's filter, the newest first (`MetadataStore`, which also holds the backend's cache)."""

import concurrent.futures
import copy
import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
from typing import Callable, Dict, Optional

import yaml

from pipeline.config import PROJECT_DIR

from forked_python import ForkServer

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

    def __init__(self, spec, pipeline_root, run_id, store, python, serving,
                 parameters: Optional[Dict] = None, may_fail: bool = False):
        self.spec, self.store, self.dialect, self.python = spec, store, store.dialect, python
        # The run's pipeline parameters: those given, else their defaults in the spec.
        self.run_parameters = {
            name: (parameters or {}).get(name, definition.get('defaultValue'))
            for name, definition in spec['root'].get('inputDefinitions', {}).get(
                'parameters', {}).items()}
        unknown = set(parameters or {}) - set(self.run_parameters)
        assert not unknown, f'parameters the pipeline does not have: {unknown}'
        # With `may_fail`, a task that fails ends the run, as a backend ends it, after the tasks
        # of its wave: {task: its output}.
        self.may_fail, self.failed = may_fail, {}
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
            if self.failed:
                break
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
            elif 'componentInputParameter' in spec:
                value = self.run_parameters[spec['componentInputParameter']]
                assert value is not None, f'pipeline parameter {name} has no value nor default'
                values[name] = value
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

    def _execute(self, name, command) -> bool:
        """Runs a task's command; whether it succeeded (it must, unless the run `may_fail`)."""
        status, output = self.python.run(command, cwd=PROJECT_DIR)
        assert status == 0 or self.may_fail, f'task {name} failed:\n{output[-6000:]}'
        if status != 0:
            self.failed[name] = output
        return status == 0

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
            if not self._execute(name, self._command(name, check, executor_input)):
                return
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
        if not self._execute(name, self._command(name, container, executor_input)):
            return
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


def image_python() -> ForkServer:
    """The image's environment (Dockerfile): its `python`, the project as WORKDIR, legacy Keras.
    The caller closes it."""
    return ForkServer({**os.environ, 'TF_USE_LEGACY_KERAS': '1', 'PATH': os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ['PATH']])})


def compile_spec(output, backend: str, pipeline_root: str, serving: str, *flags: str) -> Dict:
    """The pipeline spec `kubeflow_runner.py --local` compiles for `backend` with `flags`."""
    compiled = subprocess.run(
        [sys.executable, 'kubeflow_runner.py', '--local', '--backend', backend,
         '--output', str(output), '--image', 'local', '--pipeline-root', pipeline_root,
         '--serving-dir', serving, *flags],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300)
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    with open(output) as f:
        return yaml.safe_load(f)


def executor(spec, name):
    """The executor of task `name`."""
    return spec['deploymentSpec']['executors'][
        spec['components'][spec['root']['dag']['tasks'][name]['componentRef']['name']][
            'executorLabel']]


def container_tasks(spec):
    return [name for name in spec['root']['dag']['tasks'] if 'container' in executor(spec, name)]
