"""Compiles the MMOE pipeline for Vertex AI Pipelines or open-source Kubeflow Pipelines 2.x (a
KFP v2 spec).

    python kubeflow_runner.py --output pipeline.json --image IMAGE --pipeline-root gs://BUCKET/root \\
        --data gs://BUCKET/data                      # a Vertex AI PipelineJob
    python kubeflow_runner.py --backend kfp --output pipeline.yaml --image IMAGE \\
        --pipeline-root minio://BUCKET/root --data minio://BUCKET/data   # for open-source Kubeflow
    python kubeflow_runner.py --backend kfp --output pipeline.yaml ... --endpoint https://HOST
                                                     # and submit it

The two backends differ (docs/kubeflow.md): Vertex AI answers the spec's resolver tasks (the latest
blessed model, the last checked statistics) from its metadata store; open-source Kubeflow Pipelines
refuses resolver tasks, so there the baselines are read from the serving directory when the run
executes (components/serving_baseline.py), every task runs through pipeline/kfp_entrypoint.py, and
the checks Vertex AI runs before its cache become tasks of their own.

Every component runs in IMAGE (built by `make image` from the Dockerfile). Without --data the run
reads the data bundled in the image. Beam steps run where --beam-arg sends them (DirectRunner in the
container by default; DataflowRunner, FlinkRunner, SparkRunner or a portable job endpoint by
arguments alone). The flags --image, --pipeline-root, --data and --beam-arg fall back to the
environment variables MMOE_IMAGE, MMOE_PIPELINE_ROOT, MMOE_DATA and MMOE_BEAM_ARGS (one string,
split like a shell command line).
Nothing touches the network unless --endpoint is given.
"""

import argparse
import copy
import json
import os
import shlex
import sys
from typing import Dict, List, Optional

import yaml

from pipeline import kfp_entrypoint, spans
from pipeline.cli import add_pipeline_flags, config_from_flags
from pipeline.config import PROJECT_DIR, ConfigError, PipelineConfig

# Where the Dockerfile puts the project inside the image (its WORKDIR).
CONTAINER_PROJECT_DIR = '/mmoe'
# The Resolver's ModelBlessing query as KFP v2 compiles it matches any blessed ModelBlessing, the
# per-task Evaluators' included; this clause keeps it to the BlessingGate's (see README).
_BLESSING_QUERY = 'schema_title="tfx.ModelBlessing"'
VERTEX, KFP = 'vertex', 'kfp'
# Under the pipeline root: the span store of data by span (components/training_window.py).
SPAN_STORE = 'span_store'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_flags(parser)
    parser.add_argument('--backend', choices=[VERTEX, KFP], default=VERTEX,
                        help='where the spec runs: Vertex AI Pipelines (default), or open-source '
                             'Kubeflow Pipelines 2.x (kfp)')
    parser.add_argument('--output', required=True,
                        help='the compiled pipeline: .yaml (the pipeline spec), or .json (a Vertex '
                             'AI PipelineJob)')
    parser.add_argument('--image', default=os.environ.get('MMOE_IMAGE'),
                        help='the container image every component runs in (env MMOE_IMAGE)')
    parser.add_argument('--pipeline-root', default=os.environ.get('MMOE_PIPELINE_ROOT'),
                        help='where the artifacts go: gs://..., or s3://... / minio://... on a '
                             'self-hosted Kubeflow (env MMOE_PIPELINE_ROOT)')
    parser.add_argument('--serving-dir',
                        help='where the Pusher copies blessed models (default: '
                             '<pipeline root>/serving_model)')
    parser.add_argument('--span-store',
                        help='for data by span: where runs record the spans whose data passed '
                             'the checks, from which each run takes its training window '
                             '(default: <pipeline root>/span_store)')
    parser.add_argument('--endpoint',
                        help='a Kubeflow Pipelines endpoint: submit the compiled pipeline there')
    parser.add_argument('--experiment', default='mmoe', help='the KFP experiment of a submitted run')
    parser.add_argument('--local', action='store_true',
                        help='keep paths of this machine as given (the project at its place in '
                             'this checkout): a spec whose tasks run here, as '
                             'tests/test_kubeflow_executed.py runs them, never on a cluster')
    args = parser.parse_args(argv)
    args.data = args.data or os.environ.get('MMOE_DATA')
    args.beam_arg = args.beam_arg or shlex.split(os.environ.get('MMOE_BEAM_ARGS', ''))
    missing = [flag for flag, value in (('--image', args.image),
                                        ('--pipeline-root', args.pipeline_root)) if not value]
    if missing:
        parser.error(f'{" and ".join(missing)} required (or MMOE_IMAGE / MMOE_PIPELINE_ROOT)')
    if not args.output.endswith(('.yaml', '.yml', '.json')):
        parser.error('--output must end in .yaml (Kubeflow) or .json (Vertex AI PipelineJob)')
    if args.endpoint and args.output.endswith('.json'):
        parser.error('--endpoint submits to Kubeflow Pipelines, which takes the .yaml form')
    if args.backend == KFP and args.output.endswith('.json'):
        parser.error('--backend kfp compiles the .yaml form (a PipelineJob is Vertex AI\'s)')
    return args


def container_path(path: str, key: str) -> str:
    """A path as the container sees it: project files at their place in the image, URIs as
    given. Any other local path would only exist on this machine."""
    if '://' in path:
        return path
    relative = os.path.relpath(os.path.abspath(path), PROJECT_DIR)
    if relative.startswith('..'):
        raise ConfigError(f'{key}: {path} is a path on this machine, which the cluster cannot '
                          'read; give a gs:// (or s3://, minio://) location, or a file in this '
                          'project (the image holds a copy)')
    return f'{CONTAINER_PROJECT_DIR}/{relative}'


def cluster_config(config: PipelineConfig) -> PipelineConfig:
    return PipelineConfig.from_dict({'data': container_path(config.data, 'data'),
                                     'schema': container_path(config.schema, 'schema')},
                                    base=config)


def require_gate_blessing(pipeline_job: Dict) -> int:
    """Narrows the latest-blessed-model Resolver's ModelBlessing query to the gate's blessings.
    Returns how many queries it changed."""
    from components.blessing_gate import ALL_TASKS_BLESSED  # pylint: disable=import-outside-toplevel
    changed = 0
    for executor in pipeline_job['pipelineSpec']['deploymentSpec']['executors'].values():
        queries = executor.get('resolver', {}).get('outputArtifactQueries', {})
        for query in queries.values():
            if _BLESSING_QUERY in query['filter']:
                query['filter'] += f' AND metadata.{ALL_TASKS_BLESSED}.number_value=1'
                changed += 1
    return changed


def _inputs_spec(args: List[str]) -> Dict:
    return json.loads(kfp_entrypoint.flag_value(args, kfp_entrypoint.INPUTS_SPEC_FLAG) or '{}')


def _set_inputs_spec(args: List[str], inputs_spec: Dict):
    args[args.index(kfp_entrypoint.INPUTS_SPEC_FLAG) + 1] = json.dumps(inputs_spec, indent=2,
                                                                       sort_keys=True)


def _add_pre_cache_check(spec: Dict, name: str, check: kfp_entrypoint.PreCacheCheck):
    """Adds task `name`'s pre-cache check as a task of its own before it, never cached, whose
    output parameters `name` takes in place of any constants of the same names."""
    task = spec['root']['dag']['tasks'][name]
    component = spec['components'][task['componentRef']['name']]
    container = spec['deploymentSpec']['executors'][component['executorLabel']]['container']
    check_name = f'{name}-pre-cache-check'
    label = f'{check_name}_executor'
    spec['components'][f'comp-{check_name}'] = {
        'executorLabel': label,
        'inputDefinitions': {'parameters': copy.deepcopy(
            component.get('inputDefinitions', {}).get('parameters', {}))},
        'outputDefinitions': {'parameters': {key: {'parameterType': kind}
                                             for key, kind in check.outputs.items()}}}
    spec['deploymentSpec']['executors'][label] = {'container': {
        'image': container['image'], 'command': container['command'],
        'args': [kfp_entrypoint.PRE_CACHE_CHECK_FLAG, *container['args']]}}
    spec['root']['dag']['tasks'][check_name] = {
        'taskInfo': {'name': check_name}, 'componentRef': {'name': f'comp-{check_name}'},
        'inputs': {'parameters': copy.deepcopy(task.get('inputs', {}).get('parameters', {}))},
        'cachingOptions': {'enableCache': False}}
    inputs_spec = _inputs_spec(container['args'])
    for key, kind in check.outputs.items():
        for parameters in (component.setdefault('inputDefinitions', {}).setdefault('parameters', {}),
                           inputs_spec.setdefault('parameters', {})):
            parameters[key] = {'parameterType': kind}
        task.setdefault('inputs', {}).setdefault('parameters', {})[key] = {
            'taskOutputParameter': {'producerTask': check_name, 'outputParameterKey': key}}
    _set_inputs_spec(container['args'], inputs_spec)
    task['dependentTasks'] = sorted({*task.get('dependentTasks', []), check_name})


def for_open_source_kfp(spec: Dict) -> Dict:
    """The pipeline spec made runnable on open-source Kubeflow Pipelines 2.x (in place): every task
    runs through pipeline/kfp_entrypoint.py, with the input artifact types it repairs from in its
    inputs spec; pre-cache checks, which that backend never runs, become tasks of their own
    (pipeline/kfp_entrypoint.py says why). Refuses a spec with a resolver task, which that
    backend's compiler refuses ("resolver executors not implemented")."""
    executors = spec['deploymentSpec']['executors']
    resolvers = sorted(label for label, executor in executors.items() if 'resolver' in executor)
    if resolvers:
        raise RuntimeError(f'resolver tasks, which open-source Kubeflow Pipelines refuses: '
                           f'{resolvers}')
    for name, task in list(spec['root']['dag']['tasks'].items()):
        component = spec['components'][task['componentRef']['name']]
        container = executors[component['executorLabel']]['container']
        if container['command'][-1] != kfp_entrypoint.TFX_ENTRYPOINT:
            raise RuntimeError(f'task {name} runs {container["command"]}, not TFX\'s entrypoint')
        container['command'] = [*container['command'][:-1], kfp_entrypoint.__name__]
        container.pop('lifecycle', None)  # never run there; its check becomes a task below
        inputs_spec = _inputs_spec(container['args'])
        artifacts = component.get('inputDefinitions', {}).get('artifacts')
        if artifacts:
            inputs_spec['artifacts'] = copy.deepcopy(artifacts)
        _set_inputs_spec(container['args'], inputs_spec)
        check = kfp_entrypoint.pre_cache_check(
            kfp_entrypoint.flag_value(container['args'], kfp_entrypoint.EXECUTOR_FLAG) or '')
        if check is not None:
            _add_pre_cache_check(spec, name, check)
    return spec


def set_parameter_defaults(spec: Dict, defaults: Dict):
    """Gives the pipeline's parameters in `defaults` their default value, which TFX's compiler
    leaves out: a run that does not set one (a recurring run, each day) gets the default."""
    parameters = spec['root'].get('inputDefinitions', {}).get('parameters', {})
    for name, value in defaults.items():
        if name in parameters:
            parameters[name].update({'defaultValue': value, 'isOptional': True})


def compile_pipeline(config: PipelineConfig, image: str, pipeline_root: str, serving_dir: str,
                     beam_args: List[str], output: str, backend: str = VERTEX,
                     span_store: Optional[str] = None) -> Dict:
    """Writes the KFP v2 form of create_pipeline() for `backend` to `output`; returns the
    PipelineJob dict. `config`'s paths must be ones the cluster can read (cluster_config()).
    `span_store`: for data by span, where runs record their checked spans (default: under the
    pipeline root)."""
    # pylint: disable=import-outside-toplevel
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from components.training_window import BACKFILL_CHECK_ID
    from pipeline.pipeline import SPAN_PARAMETERS, Baselines, create_pipeline

    if spans.by_span(config.csv_pattern):
        span_store = span_store or f'{pipeline_root.rstrip("/")}/{SPAN_STORE}'
    else:
        span_store = None
    pipeline = create_pipeline(
        config, pipeline_root, serving_dir, beam_pipeline_args=beam_args,
        baselines=Baselines.SERVING_DIR if backend == KFP else Baselines.METADATA_QUERIES,
        history_runs=0, span_store=span_store)
    # Pipeline spec schema 2.1: parameters as `constant` values, which the KFP 2.x backend's driver
    # reads (it rejects the 2.0 `constantValue`), and the executor reading the `parameterValues`
    # that the KFP 2.x driver and Vertex AI send for it (docs/kubeflow.md).
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image,
                                                                use_pipeline_spec_2_1=True))
    pipeline_job = runner.run(pipeline, write_out=False)
    set_parameter_defaults(pipeline_job['pipelineSpec'], SPAN_PARAMETERS)
    tasks = pipeline_job['pipelineSpec']['root']['dag']['tasks']
    if BACKFILL_CHECK_ID in tasks:
        tasks[BACKFILL_CHECK_ID]['cachingOptions'] = {'enableCache': False}
    if backend == KFP:
        for_open_source_kfp(pipeline_job['pipelineSpec'])
    elif require_gate_blessing(pipeline_job) != 1:
        raise RuntimeError('expected one ModelBlessing query in the compiled Resolver')
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, 'w') as f:
        if output.endswith('.json'):
            json.dump(pipeline_job, f, indent=2, sort_keys=True)
        else:
            f.write(f'# {config.pipeline_name}: the MMOE TFX pipeline, compiled by '
                    f'kubeflow_runner.py for {backend}\n')
            yaml.safe_dump(pipeline_job['pipelineSpec'], f, sort_keys=True)
    return pipeline_job


def submit(package: str, endpoint: str, experiment: str, pipeline_name: str) -> str:
    """Starts a run of the compiled package on Kubeflow Pipelines; returns its link."""
    import kfp  # pylint: disable=import-outside-toplevel
    client = kfp.Client(host=endpoint)
    run = client.create_run_from_pipeline_package(package, arguments={},
                                                  experiment_name=experiment,
                                                  run_name=pipeline_name)
    return f'{endpoint.rstrip("/")}/#/runs/details/{run.run_id}'


def main(argv=None):
    args = parse_args(argv)
    try:
        config = config_from_flags(args)
        if not args.local:
            config = cluster_config(config)
    except ConfigError as e:
        sys.exit(f'error: {e}')
    serving_dir = args.serving_dir or f'{args.pipeline_root.rstrip("/")}/serving_model'
    compile_pipeline(config, args.image, args.pipeline_root, serving_dir, args.beam_arg,
                     args.output, args.backend, args.span_store)
    print(f'Compiled pipeline {config.pipeline_name!r} for {args.backend} to {args.output} '
          f'(image {args.image})')
    if args.endpoint:
        print(f'Submitted: {submit(args.output, args.endpoint, args.experiment, config.pipeline_name)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
