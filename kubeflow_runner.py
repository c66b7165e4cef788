"""Compiles the MMOE pipeline for Kubeflow Pipelines 2.x or Vertex AI Pipelines (a KFP v2 spec).

    python kubeflow_runner.py --output pipeline.yaml --image IMAGE --pipeline-root gs://BUCKET/root \\
        --data gs://BUCKET/data                      # the KFP v2 pipeline spec, for Kubeflow
    python kubeflow_runner.py --output pipeline.json ...     # a Vertex AI PipelineJob
    python kubeflow_runner.py --output pipeline.yaml ... --endpoint https://HOST   # and submit it

Every component runs in IMAGE (built by `make image` from the Dockerfile). Without --data the run
reads the data bundled in the image. Beam steps run where --beam-arg sends them (DirectRunner in the
container by default; DataflowRunner, FlinkRunner, SparkRunner or a portable job endpoint by
arguments alone). The flags --image, --pipeline-root, --data and --beam-arg fall back to the
environment variables MMOE_IMAGE, MMOE_PIPELINE_ROOT, MMOE_DATA and MMOE_BEAM_ARGS (one string,
split like a shell command line).
Nothing touches the network unless --endpoint is given.
"""

import argparse
import json
import os
import shlex
import sys
from typing import Dict, List

import yaml

from pipeline.cli import add_pipeline_flags, config_from_flags
from pipeline.config import PROJECT_DIR, ConfigError, PipelineConfig

# Where the Dockerfile puts the project inside the image (its WORKDIR).
CONTAINER_PROJECT_DIR = '/mmoe'
# The Resolver's ModelBlessing query as KFP v2 compiles it matches any blessed ModelBlessing, the
# per-task Evaluators' included; this clause keeps it to the BlessingGate's (see README).
_BLESSING_QUERY = 'schema_title="tfx.ModelBlessing"'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_flags(parser)
    parser.add_argument('--output', required=True,
                        help='the compiled pipeline: .yaml for Kubeflow Pipelines 2.x, .json for '
                             'a Vertex AI PipelineJob')
    parser.add_argument('--image', default=os.environ.get('MMOE_IMAGE'),
                        help='the container image every component runs in (env MMOE_IMAGE)')
    parser.add_argument('--pipeline-root', default=os.environ.get('MMOE_PIPELINE_ROOT'),
                        help='where the artifacts go: gs://..., or s3://... / minio://... on a '
                             'self-hosted Kubeflow (env MMOE_PIPELINE_ROOT)')
    parser.add_argument('--serving-dir',
                        help='where the Pusher copies blessed models (default: '
                             '<pipeline root>/serving_model)')
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


def compile_pipeline(config: PipelineConfig, image: str, pipeline_root: str, serving_dir: str,
                     beam_args: List[str], output: str) -> Dict:
    """Writes the KFP v2 form of create_pipeline() to `output`; returns the PipelineJob dict.
    `config`'s paths must be ones the cluster can read (cluster_config())."""
    # pylint: disable=import-outside-toplevel
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(config, pipeline_root, serving_dir, beam_pipeline_args=beam_args,
                               kfp_v2_resolvers=True, history_runs=0)
    # Pipeline spec schema 2.1: parameters as `constant` values, which the KFP 2.x backend's driver
    # reads (it rejects the 2.0 `constantValue`), and the executor reading the `parameterValues`
    # that the KFP 2.x driver and Vertex AI send for it (docs/kubeflow.md).
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=image,
                                                                use_pipeline_spec_2_1=True))
    pipeline_job = runner.run(pipeline, write_out=False)
    if require_gate_blessing(pipeline_job) != 1:
        raise RuntimeError('expected one ModelBlessing query in the compiled Resolver')
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, 'w') as f:
        if output.endswith('.json'):
            json.dump(pipeline_job, f, indent=2, sort_keys=True)
        else:
            f.write(f'# {config.pipeline_name}: the MMOE TFX pipeline, compiled by '
                    'kubeflow_runner.py\n')
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
                     args.output)
    print(f'Compiled pipeline {config.pipeline_name!r} to {args.output} (image {args.image})')
    if args.endpoint:
        print(f'Submitted: {submit(args.output, args.endpoint, args.experiment, config.pipeline_name)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
