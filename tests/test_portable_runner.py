"""Beam's portable path, as Flink and Spark run it: the whole local pipeline on the small data,
every Beam step sent by `PortableRunner` through Beam's job API to Beam's own local job service
(`apache_beam.runners.portability.local_job_service_main`), whose SDK workers an `EXTERNAL` worker
pool (`apache_beam.runners.worker.worker_pool_main`) starts as processes of their own. The test
starts both services on free ports and stops them, with their workers, at the end.

The workers start as Beam's boot program starts one in the pipeline image on a cluster: this
module, run as the worker pool's `--container_executable`, asks the job's provision service for its
pipeline options and staged artifacts, fetches the artifacts, and execs Beam's `sdk_worker_main`,
which takes the pickler and the rest of the job's options from them. Unlike the boot program it
does not pip-install the staged sdist: this `.venv`, which has the project installed, plays the
image, which has it too.

What it proves: each Beam component's pipeline (the DoFns, combiners and TFX/TFT/TFDV/TFMA
transforms built from our executors and config) pickles in the launcher and runs in other
processes that share no memory with it; the job service receives one job per Beam component (its
job API lists them); the launcher stages this project (the sdist of `--setup_file`) with every job
and a worker can retrieve it; the local Beam arguments local_runner adds, cloudpickle among them,
reach the workers; and the outputs are the DirectRunner's on the same data (the default runs):
the same examples in every split, the same vocabularies, the same transformed rows, metrics and
verdicts. What only a cluster can prove (the Flink and Spark job servers, Docker environments, the
boot program's install) is in docs/kubeflow.md.
"""

import argparse
import collections
import contextlib
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from helpers import SMALL_TRAINING, SPLIT_DATA, run_pipeline

pytestmark = pytest.mark.e2e

# Where a worker writes what it was given (the boot environment's variable).
RECORDS_ENV = 'MMOE_PORTABLE_WORKER_RECORDS'
# A job's component, from the names of its pipeline's top-level transforms.
JOB_SIGNATURES = {
    'CsvExampleGen': {'InputToRecord[train]', 'WriteSplit[eval]'},
    'StatisticsGen': {'GenerateStatistics[train]', 'WriteStatsOutput[eval]'},
    'Transform': {'Analyze', 'Transform[TransformIndex0]'},
    'Evaluator': {'ExtractEvaluateAndWriteResults'},
}
# An Evaluator executor class for TFX's container entrypoint (components/blessing_gate.py), which
# builds no Beam pipeline.
BEAM_EXECUTORS_WITHOUT_A_JOB = {'BlessingGate'}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('localhost', 0))
        return s.getsockname()[1]


def _wait_for(ready, process, log_path, what, timeout=180):
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            with open(log_path, errors='replace') as f:
                raise RuntimeError(f'{what} did not start (exit code {process.poll()}):\n'
                                   f'{f.read()[-5000:]}')
        time.sleep(0.2)


def _listening(port):
    with contextlib.suppress(OSError), socket.create_connection(('localhost', port), timeout=1):
        return True
    return False


def _stop(process):
    """Stops a service and the workers it started: their own process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _live_members(pgid):
    """The processes of process group `pgid` that are not zombies (an orphan's exit status waits
    for whatever reaps orphans here)."""
    members = []
    for stat in glob.glob('/proc/[0-9]*/stat'):
        with contextlib.suppress(OSError), open(stat) as f:
            # pid (comm) state ppid pgrp ...: comm may hold spaces and ')', so after the last ')'.
            state, _, group = f.read().rsplit(')', 1)[1].split()[:3]
            if int(group) == pgid and state != 'Z':
                members.append(int(stat.split('/')[2]))
    return members


class BeamServices:
    """The local job service and an EXTERNAL worker pool, started in `root` as processes of
    their own, each in its own process group."""

    def __init__(self, root):
        self.root = str(root)
        self.records = os.path.join(self.root, 'workers')
        os.makedirs(self.records)
        boot = os.path.join(self.root, 'boot')
        with open(boot, 'w') as f:
            f.write(f'#!/bin/sh\nexec "{sys.executable}" "{os.path.abspath(__file__)}" "$@"\n')
        os.chmod(boot, 0o755)
        # The pipeline image's environment (Dockerfile): Keras 2.
        env = dict(os.environ, TF_USE_LEGACY_KERAS='1', **{RECORDS_ENV: self.records})
        self.logs = {name: os.path.join(self.root, f'{name}.log')
                     for name in ('job_service', 'worker_pool')}
        port_file = os.path.join(self.root, 'job_service.port')
        self.worker_port = _free_port()
        self.processes = {
            'job_service': self._start(
                'job_service', env, '-m', 'apache_beam.runners.portability.local_job_service_main',
                '--port', '0', '--port_file', port_file,
                '--staging_dir', os.path.join(self.root, 'staging')),
            'worker_pool': self._start(
                'worker_pool', env, '-m', 'apache_beam.runners.worker.worker_pool_main',
                f'--service_port={self.worker_port}', f'--container_executable={boot}'),
        }
        _wait_for(lambda: os.path.exists(port_file), self.processes['job_service'],
                  self.logs['job_service'], 'the job service')
        with open(port_file) as f:
            self.job_port = int(f.read())
        _wait_for(lambda: _listening(self.worker_port), self.processes['worker_pool'],
                  self.logs['worker_pool'], 'the worker pool')

    def _start(self, name, env, *args):
        with open(self.logs[name], 'w') as log:
            return subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self.root, env=env, start_new_session=True)

    def beam_args(self):
        return ['--beam-arg=--runner=PortableRunner',
                f'--beam-arg=--job_endpoint=localhost:{self.job_port}',
                '--beam-arg=--environment_type=EXTERNAL',
                f'--beam-arg=--environment_config=localhost:{self.worker_port}']

    def jobs(self):
        """[(job's state, its environments' URNs, its top-level transforms' names)] of every
        job the job service received, through its job API."""
        # pylint: disable=import-outside-toplevel
        import grpc
        from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc
        with grpc.insecure_channel(f'localhost:{self.job_port}') as channel:
            service = beam_job_api_pb2_grpc.JobServiceStub(channel)
            jobs = []
            for info in service.GetJobs(beam_job_api_pb2.GetJobsRequest()).job_info:
                pipeline = service.GetPipeline(
                    beam_job_api_pb2.GetJobPipelineRequest(job_id=info.job_id)).pipeline
                transforms = pipeline.components.transforms
                top = {transforms[child].unique_name for root in pipeline.root_transform_ids
                       for child in transforms[root].subtransforms}
                jobs.append((beam_job_api_pb2.JobState.Enum.Name(info.state),
                             {env.urn for env in pipeline.components.environments.values()}, top))
            return jobs

    def stop(self):
        for process in self.processes.values():
            _stop(process)

    def log(self, name):
        with open(self.logs[name], errors='replace') as f:
            return f.read()


def _component(top_transforms):
    names = [name for name, signature in JOB_SIGNATURES.items() if signature <= top_transforms]
    assert len(names) == 1, top_transforms
    return names[0]


@pytest.fixture(scope='module')
def portable_run(tmp_path_factory, small_data, default_runs):
    """The default pipeline on the small data with PortableRunner, into a fresh output; the
    DirectRunner's first default run on the same data is its reference (and makes this module
    one of the default runs' tests, on their xdist worker)."""
    services = BeamServices(tmp_path_factory.mktemp('portable'))
    try:
        run = run_pipeline(services.root + '/output', '--data', small_data, *SPLIT_DATA,
                           *SMALL_TRAINING, *services.beam_args())
        jobs = services.jobs()
    finally:
        services.stop()
    records = []
    for path in sorted(glob.glob(os.path.join(services.records, '*.json'))):
        with open(path) as f:
            records.append(json.load(f))
    return argparse.Namespace(run=run, jobs=jobs, workers=records, services=services,
                              data=small_data, direct=default_runs[0])


def test_the_run_succeeds_with_every_beam_step_a_job_of_the_job_service(portable_run):
    services = portable_run.services
    run = portable_run.run
    assert run.returncode == 0, (f'{run.stderr}\njob service:\n{services.log("job_service")[-5000:]}'
                                 f'\nworker pool:\n{services.log("worker_pool")[-5000:]}')
    run.check()
    assert set(run.states().values()) == {'COMPLETE'}, run.states()
    jobs = portable_run.jobs
    assert all(state == 'DONE' for state, _, _ in jobs), jobs
    assert all(urns == {'beam:env:external:v1'} for _, urns, _ in jobs), jobs
    ran = collections.Counter(_component(top) for _, _, top in jobs)
    tasks = run.summary['tasks']
    assert ran == {'CsvExampleGen': 1, 'StatisticsGen': 1, 'Transform': 1, 'Evaluator': len(tasks)}

    # Every component of the pipeline whose executor is a Beam executor sent its job there.
    # pylint: disable=import-outside-toplevel
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    import local_runner
    from pipeline.cli import config_from_flags
    from pipeline.pipeline import create_pipeline
    config = config_from_flags(local_runner.parse_args(
        ['--data', portable_run.data, *SPLIT_DATA, *SMALL_TRAINING]))
    pipeline = create_pipeline(config, services.root + '/unused', services.root + '/unused',
                               beam_pipeline_args=[])
    beam_nodes = {component.id.split('.')[0] for component in pipeline.components
                  if issubclass(getattr(getattr(component, 'executor_spec', None),
                                        'executor_class', object), BaseBeamExecutor)}
    assert beam_nodes - BEAM_EXECUTORS_WITHOUT_A_JOB == set(ran)


def test_workers_are_processes_of_their_own_with_the_jobs_options_and_staged_project(
        portable_run):
    workers = portable_run.workers
    # At least one worker a job, none of them the launcher (local_runner) or this test.
    assert len(workers) >= len(portable_run.jobs), workers
    pool_pid = portable_run.services.processes['worker_pool'].pid
    assert all(worker['parent'] == pool_pid for worker in workers), workers
    assert os.getpid() not in {worker['pid'] for worker in workers}
    for worker in workers:
        # The local arguments (local_runner.LOCAL_BEAM_ARGS) reach the workers, with ours.
        assert worker['options']['pickle_library'] == 'cloudpickle', worker
        assert worker['options']['environment_type'] == 'EXTERNAL', worker
        assert 'workflow.tar.gz' in worker['staged'], worker
        with tarfile.open(worker['staged']['workflow.tar.gz']) as sdist:
            names = {name.split('/', 1)[-1] for name in sdist.getnames()}
        assert {'setup.py', 'components/evaluator.py', 'components/transform.py',
                'trainer_module/preprocessing.py', 'pipeline/config.py'} <= names
    # The harness in each worker started and logged to the job service, as a cluster's would.
    assert portable_run.services.log('job_service').count('Python sdk harness starting') \
        >= len(portable_run.jobs)


def test_the_services_and_their_workers_are_stopped(portable_run):
    for name, process in portable_run.services.processes.items():
        assert process.returncode is not None, name
        assert not _live_members(process.pid), name


def _split_records(run, component, output, split):
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf
    uri = run.summary['nodes'][component]['outputs'][output][0]['uri']
    files = glob.glob(os.path.join(uri, f'Split-{split}', '*'))
    assert files, (uri, split)
    return sorted(record.numpy() for record in tf.data.TFRecordDataset(files,
                                                                       compression_type='GZIP'))


def _vocabularies(run):
    uri = run.summary['nodes']['Transform']['outputs']['transform_graph'][0]['uri']
    files = {}
    for path in glob.glob(os.path.join(uri, 'transform_fn', 'assets', '*')):
        with open(path, 'rb') as f:
            files[os.path.basename(path)] = f.read()
    return files


def test_outputs_are_the_direct_runners(portable_run):
    run, direct = portable_run.run, portable_run.direct
    assert run.returncode == 0, run.stderr
    for split in ('train', 'validation', 'eval'):
        assert (_split_records(run, 'CsvExampleGen', 'examples', split)
                == _split_records(direct, 'CsvExampleGen', 'examples', split)), split
    vocabularies = _vocabularies(run)
    assert vocabularies and vocabularies == _vocabularies(direct)
    # The Trainer's fingerprints of the transformed rows it read: the same rows, value for value.
    properties, direct_properties = (r.summary['trained_model']['properties']
                                     for r in (run, direct))
    for key in ('train_data_fingerprint', 'validation_data_fingerprint'):
        assert properties[key] == direct_properties[key], key
    assert set(run.summary['tasks']) == set(direct.summary['tasks'])
    for task, result in run.summary['tasks'].items():
        expected = direct.summary['tasks'][task]
        assert result['metrics'] == pytest.approx(expected['metrics'], rel=1e-9), task
        assert result['verdict'] == expected['verdict'], task
    assert run.summary['pushed_model'] and direct.summary['pushed_model']


def _boot(argv):
    """What Beam's boot program does in an SDK container, short of installing the staged files:
    the job's options and staged artifacts from the provision and artifact services, then Beam's
    SDK harness, in this process. Records what it was given under RECORDS_ENV."""
    # pylint: disable=import-outside-toplevel
    import grpc
    from apache_beam.portability.api import (
        beam_artifact_api_pb2,
        beam_artifact_api_pb2_grpc,
        beam_provision_api_pb2,
        beam_provision_api_pb2_grpc,
        beam_runner_api_pb2,
        endpoints_pb2,
    )
    from apache_beam.utils import proto_utils
    from google.protobuf import json_format, text_format

    parser = argparse.ArgumentParser()
    for flag in ('id', 'logging_endpoint', 'artifact_endpoint', 'provision_endpoint',
                 'control_endpoint'):
        parser.add_argument(f'--{flag}', required=True)
    args = parser.parse_args(argv)
    metadata = [('worker_id', args.id)]
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=metadata).info
    directory = os.path.join(os.environ[RECORDS_ENV], f'{os.getpid()}')
    os.makedirs(directory)
    staged = {}
    with grpc.insecure_channel(args.artifact_endpoint) as channel:
        retrieval = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
        for artifact in info.dependencies:
            name = proto_utils.parse_Bytes(
                artifact.role_payload, beam_runner_api_pb2.ArtifactStagingToRolePayload
            ).staged_name
            staged[name] = os.path.join(directory, name)
            with open(staged[name], 'wb') as f:
                for chunk in retrieval.GetArtifact(
                        beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact),
                        metadata=metadata):
                    f.write(chunk.data)
    options = json_format.MessageToDict(info.pipeline_options)
    record = {'pid': os.getpid(), 'parent': os.getppid(), 'worker_id': args.id, 'staged': staged,
              'options': {key.split(':')[2]: value for key, value in options.items()}}
    with open(directory + '.json', 'w') as f:
        json.dump(record, f)

    def descriptor(url):
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))
    env = dict(os.environ, WORKER_ID=args.id, SEMI_PERSISTENT_DIRECTORY=directory,
               PIPELINE_OPTIONS=json_format.MessageToJson(info.pipeline_options),
               CONTROL_API_SERVICE_DESCRIPTOR=descriptor(args.control_endpoint),
               LOGGING_API_SERVICE_DESCRIPTOR=descriptor(args.logging_endpoint),
               RUNNER_CAPABILITIES=' '.join(info.runner_capabilities))
    if info.status_endpoint.url:
        env['STATUS_API_SERVICE_DESCRIPTOR'] = descriptor(info.status_endpoint.url)
    # The worker pool pipes a worker's stdout and never reads it: stdout goes to stderr.
    os.dup2(2, 1)
    os.execve(sys.executable, [sys.executable, '-m', 'apache_beam.runners.worker.sdk_worker_main'],
              env)


if __name__ == '__main__':
    _boot(sys.argv[1:])
