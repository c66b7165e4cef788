"""kubeflow_runner.py: the same pipeline compiled into a KFP v2 spec, checked without a cluster."""

import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

import kubeflow_runner
from components.blessing_gate import ALL_TASKS_BLESSED, evaluation_key
from components.blessing_gate import COMPONENT_ID as GATE_ID
from pipeline import kfp_entrypoint
from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.evaluation import evaluator_id

IMAGE = 'europe-docker.pkg.dev/my-project/mmoe/mmoe:1.0'
PIPELINE_ROOT = 'gs://my-bucket/mmoe/pipeline'
DATA = 'gs://my-bucket/mmoe/data'
BEAM_ARGS = ['--runner=DataflowRunner', '--project=my-project', '--region=europe-west1',
             '--temp_location=gs://my-bucket/tmp']
RESOLVER_ID = 'latest_blessed_model_resolver'


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
    """(the YAML text, the PipelineSpec proto) of a compile with Dataflow arguments; the image
    and the data come from the environment."""
    tmp_path = tmp_path_factory.mktemp('kfp')
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stdout(printed):
        env.setenv('MMOE_IMAGE', IMAGE)
        env.setenv('MMOE_DATA', DATA)
        assert kubeflow_runner.main(['--output', str(tmp_path / 'pipeline.yaml'),
                                     '--pipeline-root', PIPELINE_ROOT,
                                     *[f'--beam-arg={a}' for a in BEAM_ARGS]]) == 0
    assert f'to {tmp_path / "pipeline.yaml"} (image {IMAGE})' in printed.getvalue()
    text = (tmp_path / 'pipeline.yaml').read_text()
    spec = json_format.ParseDict(yaml.safe_load(text), pipeline_spec_pb2.PipelineSpec())
    return text, spec


def _executors(spec):
    """{executor label: its spec as a dict} (deployment_spec is a Struct)."""
    return json_format.MessageToDict(spec.deployment_spec)['executors']


def _executor(spec, task_name):
    component = spec.components[spec.root.dag.tasks[task_name].component_ref.name]
    return _executors(spec)[component.executor_label]


def _resolver_node(task_name):
    """KFP v2 splits the latest-blessed-model Resolver into two query tasks."""
    return RESOLVER_ID if task_name.startswith(RESOLVER_ID) else task_name


def test_every_component_runs_in_the_image(compiled):
    _, spec = compiled
    tasks = spec.root.dag.tasks
    containers = {name for name in tasks if 'container' in _executor(spec, name)}
    assert {_resolver_node(name) for name in set(tasks) - containers} == {
        RESOLVER_ID, 'previous_statistics_resolver'}
    for name in containers:
        assert _executor(spec, name)['container']['image'] == IMAGE, name


def test_dag_edges_equal_the_local_pipeline(compiled):
    # pylint: disable=import-outside-toplevel
    from pipeline.pipeline import Baselines, create_pipeline
    _, spec = compiled
    # As kubeflow_runner builds it: TFX's own resolver strategies, no History (KFP v2 resolves at
    # most one artifact).
    local = create_pipeline(PipelineConfig(), '/root', '/serving',
                            baselines=Baselines.METADATA_QUERIES, history_runs=0)
    local_edges = {(upstream.id, component.id) for component in local.components
                   for upstream in component.upstream_nodes}
    compiled_edges = {(_resolver_node(upstream), _resolver_node(name))
                      for name, task in spec.root.dag.tasks.items()
                      for upstream in task.dependent_tasks}
    compiled_edges.discard((RESOLVER_ID, RESOLVER_ID))  # between its own two query tasks
    assert compiled_edges == local_edges


def test_one_evaluator_per_task_feeds_the_gate(compiled):
    _, spec = compiled
    tasks = spec.root.dag.tasks
    gate_inputs = tasks[GATE_ID].inputs.artifacts
    for task in PipelineConfig().task_names:
        assert evaluator_id(task) in tasks
        source = gate_inputs[evaluation_key(task)].task_output_artifact
        assert (source.producer_task, source.output_artifact_key) == (evaluator_id(task),
                                                                      'evaluation')
    assert tasks['Pusher'].inputs.artifacts['model_blessing'].task_output_artifact.producer_task \
        == GATE_ID


def test_baseline_comes_only_from_gate_blessings(compiled):
    _, spec = compiled
    filters = [query['filter'] for executor in _executors(spec).values()
               if 'resolver' in executor
               for query in executor['resolver']['outputArtifactQueries'].values()]
    blessing_filters = [f for f in filters if 'tfx.ModelBlessing' in f]
    assert len(blessing_filters) == 1
    assert f'metadata.{ALL_TASKS_BLESSED}.number_value=1' in blessing_filters[0]


def test_parameters_come_in_the_form_kfp_2_and_vertex_send(compiled):
    """Schema 2.1: constants that the KFP 2.x driver and Vertex AI put into the executor input's
    parameterValues, which TFX's entrypoint reads only with the inputs spec argument."""
    _, spec = compiled
    assert spec.schema_version == '2.1.0'
    for executor in _executors(spec).values():
        if 'container' in executor:
            assert '--json_serialized_inputs_spec_args' in executor['container']['args']
    for name, task in spec.root.dag.tasks.items():
        for key, parameter in task.inputs.parameters.items():
            assert parameter.runtime_value.WhichOneof('value') == 'constant', (name, key)


def test_no_path_of_this_machine_leaks(compiled):
    text, _ = compiled
    for local in (PROJECT_DIR, sys.prefix, os.path.expanduser('~') + '/', '/tmp/'):
        assert local not in text, local
    assert DATA in text
    assert f'{kubeflow_runner.CONTAINER_PROJECT_DIR}/schema/schema.pbtxt' in text


def test_beam_arguments_reach_every_beam_step(compiled):
    _, spec = compiled
    for name in ('CsvExampleGen', 'StatisticsGen', 'Transform', evaluator_id('ctr')):
        args = list(_executor(spec, name)['container']['args'])
        for beam_arg in BEAM_ARGS:
            assert beam_arg in args, (name, beam_arg)


def _module_paths(spec):
    """The Python paths the containers import: executor classes and the user functions."""
    paths = set()
    for executor in _executors(spec).values():
        args = list(executor.get('container', {}).get('args', []))
        if '--executor_class_path' in args:
            paths.add(args[args.index('--executor_class_path') + 1])
    for task in spec.root.dag.tasks.values():
        for key in ('run_fn', 'preprocessing_fn'):
            if key in task.inputs.parameters:
                paths.add(task.inputs.parameters[key].runtime_value.constant.string_value)
    return {p for p in paths if not p.startswith('tfx.')}


def test_module_paths_in_the_spec_import_from_the_installed_package(compiled, tmp_path):
    _, spec = compiled
    paths = _module_paths(spec)
    assert {'trainer_module.run.run_fn', 'trainer_module.preprocessing.preprocessing_fn',
            'components.blessing_gate.Executor'} <= paths
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--quiet', '-w',
                    str(tmp_path), PROJECT_DIR], check=True, timeout=300)
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith('.whl'))
    packaged = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    for path in paths:
        module, name = path.rsplit('.', 1)
        stem = module.replace('.', '/')  # a module, or a package's __init__
        assert {stem + '.py', stem + '/__init__.py'} & packaged, path
        assert hasattr(importlib.import_module(module), name), path


def test_dockerfile_installs_the_project_where_the_spec_points(compiled):
    with open(os.path.join(PROJECT_DIR, 'Dockerfile')) as f:
        dockerfile = f.read()
    assert re.search(r'^ARG TFX_IMAGE=tensorflow/tfx:1\.16\.0$', dockerfile, re.M)
    assert re.search(r'^FROM \$\{TFX_IMAGE\}$', dockerfile, re.M)
    assert re.search(r'^ENV TF_USE_LEGACY_KERAS=1$', dockerfile, re.M)
    assert re.search(rf'^WORKDIR {kubeflow_runner.CONTAINER_PROJECT_DIR}$', dockerfile, re.M)
    assert re.search(r'^COPY \. \.$', dockerfile, re.M)
    # Beam's worker boot program of the Beam version setup.py pins.
    with open(os.path.join(PROJECT_DIR, 'setup.py')) as f:
        beam_version = re.search(r"'apache-beam\[gcp\]==([\d.]+)'", f.read()).group(1)
    assert re.search(rf'^COPY --from=apache/beam_python3\.10_sdk:{re.escape(beam_version)} '
                     r'/opt/apache/beam /opt/apache/beam$', dockerfile, re.M)
    assert re.search(r'^RUN python -m pip install --no-cache-dir \.$', dockerfile, re.M)
    with open(os.path.join(PROJECT_DIR, '.dockerignore')) as f:
        ignored = f.read().split()
    for needed in ('setup.py', 'schema', 'data', 'pipeline', 'components', 'trainer_module'):
        assert needed not in ignored
    # The files the compiled default config reads in the container are in the project.
    text, _ = compiled
    paths = set(re.findall(rf'(?<=[\s"\']){kubeflow_runner.CONTAINER_PROJECT_DIR}/[\w/.]+', text))
    assert paths
    for path in paths:
        relative = os.path.relpath(path, kubeflow_runner.CONTAINER_PROJECT_DIR)
        assert os.path.exists(os.path.join(PROJECT_DIR, relative)), path


def test_json_output_is_a_vertex_pipeline_job(tmp_path):
    output = tmp_path / 'pipeline.json'
    kubeflow_runner.main(['--output', str(output), '--image', IMAGE, '--pipeline-root',
                          PIPELINE_ROOT, '--data', DATA])
    with open(output) as f:
        job = json.load(f)
    assert job['runtimeConfig']['gcsOutputDirectory'] == PIPELINE_ROOT
    assert job['pipelineSpec']['pipelineInfo']['name'] == PipelineConfig().pipeline_name
    assert job['displayName'] == PipelineConfig().pipeline_name


def test_open_source_kfp_gets_a_spec_without_resolvers_through_our_entrypoint(tmp_path):
    """--backend kfp: no resolver task (open-source Kubeflow Pipelines refuses them); each task
    runs pipeline/kfp_entrypoint.py with its input artifacts' types in its inputs spec; the
    ExampleGen's and the ServingBaseline's checks run as tasks that are never cached, and their
    findings are the parameters of the task they check."""
    output = tmp_path / 'pipeline.yaml'
    kubeflow_runner.main(['--backend', 'kfp', '--output', str(output), '--image', IMAGE,
                          '--pipeline-root', PIPELINE_ROOT, '--data', DATA])
    spec = json_format.ParseDict(yaml.safe_load(output.read_text()),
                                 pipeline_spec_pb2.PipelineSpec())
    tasks = spec.root.dag.tasks
    assert not [name for name in tasks if 'container' not in _executor(spec, name)]
    checks = {}
    for name, task in tasks.items():
        container = _executor(spec, name)['container']
        assert container['command'] == ['python', '-m', kfp_entrypoint.__name__], name
        assert 'lifecycle' not in container, name
        args = container['args']
        inputs_spec = json.loads(args[args.index(kfp_entrypoint.INPUTS_SPEC_FLAG) + 1])
        declared = json_format.MessageToDict(
            spec.components[task.component_ref.name].input_definitions).get('artifacts', {})
        assert inputs_spec.get('artifacts', {}) == declared, name
        if kfp_entrypoint.PRE_CACHE_CHECK_FLAG in args:
            assert not task.caching_options.enable_cache, name
            checks[name] = args[args.index(kfp_entrypoint.EXECUTOR_FLAG) + 1]
        else:
            assert task.caching_options.enable_cache, name
    assert sorted(checks) == ['CsvExampleGen-pre-cache-check', 'ServingBaseline-pre-cache-check']
    for name, executor_path in checks.items():
        checked = tasks[name.removesuffix('-pre-cache-check')]
        for key in kfp_entrypoint.pre_cache_check(executor_path).outputs:
            source = checked.inputs.parameters[key].task_output_parameter
            assert (source.producer_task, source.output_parameter_key) == (name, key)
    for consumer, key in [(evaluator_id(task), 'baseline_model')
                          for task in PipelineConfig().task_names] + [
                              ('DriftValidator', 'baseline_statistics')]:
        assert tasks[consumer].inputs.artifacts[key].task_output_artifact.producer_task \
            == 'ServingBaseline', consumer
    assert tasks['Pusher'].inputs.artifacts['statistics'].task_output_artifact.producer_task \
        == 'AnomalyCheck'


def test_a_spec_with_a_resolver_is_refused_for_open_source_kfp(compiled):
    _, spec = compiled
    with pytest.raises(RuntimeError, match='resolver tasks, which open-source Kubeflow '
                                           'Pipelines refuses'):
        kubeflow_runner.for_open_source_kfp(json_format.MessageToDict(spec))


def test_a_local_data_path_is_refused(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        kubeflow_runner.main(['--output', str(tmp_path / 'pipeline.yaml'), '--image', IMAGE,
                              '--pipeline-root', PIPELINE_ROOT, '--data', str(tmp_path)])
    error = exit_.value.code
    assert isinstance(error, str) and '\n' not in error
    assert error.startswith(f'error: data: {tmp_path} is a path on this machine'), error
    assert not (tmp_path / 'pipeline.yaml').exists()


def test_image_is_required(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv('MMOE_IMAGE', raising=False)
    with pytest.raises(SystemExit) as exit_:
        kubeflow_runner.main(['--output', str(tmp_path / 'pipeline.yaml'), '--pipeline-root',
                              PIPELINE_ROOT])
    assert exit_.value.code == 2 and '--image required' in capsys.readouterr().err


@pytest.mark.parametrize('backend', ['vertex', 'kfp'])
def test_data_by_span_compiles_the_span_as_a_parameter_and_the_window_from_the_store(
        tmp_path, backend):
    """Data by span, on either backend: the span (range_config) and backfill are parameters of
    each run with defaults; the Trainer learns from TrainingWindow's window and the Evaluators
    judge its rows of the run's span; BackfillCheck is never taken from the cache."""
    output = tmp_path / 'pipeline.yaml'
    kubeflow_runner.main(['--backend', backend, '--output', str(output), '--image', IMAGE,
                          '--pipeline-root', PIPELINE_ROOT, '--data', DATA,
                          '--set', 'csv_pattern=span-{SPAN}/*.csv'])
    spec = yaml.safe_load(output.read_text())
    assert spec['root']['inputDefinitions']['parameters'] == {
        'backfill': {'parameterType': 'NUMBER_INTEGER', 'defaultValue': 0, 'isOptional': True},
        'range_config': {'parameterType': 'STRING', 'defaultValue': '', 'isOptional': True}}
    tasks = spec['root']['dag']['tasks']
    example_gen = 'CsvExampleGen-pre-cache-check' if backend == 'kfp' else 'CsvExampleGen'
    assert tasks[example_gen]['inputs']['parameters']['range_config'] == {
        'componentInputParameter': 'range_config'}
    assert tasks['BackfillCheck']['inputs']['parameters']['backfill'] == {
        'componentInputParameter': 'backfill'}
    assert tasks['BackfillCheck']['cachingOptions'] == {'enableCache': False}
    assert tasks['TrainingWindow']['inputs']['parameters']['span_store'] == {
        'runtimeValue': {'constant': f'{PIPELINE_ROOT}/span_store'}}
    assert {'AnomalyCheck', 'BackfillCheck'} <= set(tasks['TrainingWindow']['dependentTasks'])
    assert tasks['Transform']['inputs']['artifacts']['examples']['taskOutputArtifact'] == {
        'producerTask': 'TrainingWindow', 'outputArtifactKey': 'training'}
    for task in PipelineConfig().task_names:
        assert tasks[evaluator_id(task)]['inputs']['artifacts']['examples'][
            'taskOutputArtifact'] == {'producerTask': 'TrainingWindow',
                                      'outputArtifactKey': 'judged'}
