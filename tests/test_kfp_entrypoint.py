"""pipeline/kfp_entrypoint.py: each repair of what the open-source Kubeflow Pipelines driver sends,
and the pre-cache checks, against TFX's own entrypoint code and driver."""

import argparse
import json
import os

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver as tfx_example_gen_driver
from tfx.types import standard_artifacts

from components import csv_example_gen, serving_baseline
from pipeline import kfp_entrypoint

EXAMPLES_TYPE = {'schemaTitle': 'tfx.Examples', 'schemaVersion': '0.0.1'}
# The type of an upstream artifact as the open-source driver sends it.
UNTYPED = {'instanceSchema': ''}


def _executor_input(artifact_type, metadata=None):
    return {'inputs': {'artifacts': {'examples': {'artifacts': [{
        'name': '17', 'uri': '/root/CsvExampleGen/examples', 'type': artifact_type,
        'metadata': metadata or {}}]}}}}


def _parse(executor_input):
    """Input artifacts as TFX's entrypoint parses them."""
    parsed = json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())
    return kubeflow_v2_entrypoint_utils.parse_raw_artifact_dict(parsed.inputs.artifacts)


def test_tfx_s_entrypoint_fails_on_an_untyped_artifact_and_reads_it_once_repaired():
    given = _executor_input(UNTYPED, {'split_names': '["train", "eval"]', 'span': 3.0,
                                      'display_name': 'examples'})
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'get'"):
        _parse(given)
    repaired = kfp_entrypoint.repair_executor_input(
        given, {'artifacts': {'examples': {'artifactType': EXAMPLES_TYPE}}})
    (examples,) = _parse(repaired)['examples']
    assert isinstance(examples, standard_artifacts.Examples)
    assert examples.uri == '/root/CsvExampleGen/examples'
    assert examples.split_names == '["train", "eval"]'
    # The integer the open-source store hands back as a double is the property's int again.
    assert examples.span == 3 and isinstance(examples.span, int)
    assert given['inputs']['artifacts']['examples']['artifacts'][0]['type'] == UNTYPED


def test_a_typed_artifact_is_left_as_sent():
    given = _executor_input({'schemaTitle': 'tfx.ExampleStatistics'})
    repaired = kfp_entrypoint.repair_executor_input(
        given, {'artifacts': {'examples': {'artifactType': EXAMPLES_TYPE}}})
    assert repaired == given


def test_an_untyped_artifact_without_a_declared_type_is_refused_by_key_and_uri():
    with pytest.raises(kfp_entrypoint.ExecutorInputError,
                       match=r"'examples' \(/root/CsvExampleGen/examples\) came without a type"):
        kfp_entrypoint.repair_executor_input(_executor_input(UNTYPED), {'parameters': {}})


def _example_gen_invocation(tmp_path, data, pattern):
    output_file = tmp_path / 'out' / 'output_metadata.json'
    executor_input = {
        'inputs': {'parameterValues': {
            'input_base': str(data),
            'input_config': json.dumps({'splits': [{'name': 'train', 'pattern': pattern}]})}},
        'outputs': {'outputFile': str(output_file), 'artifacts': {'examples': {'artifacts': [{
            'name': '', 'uri': str(tmp_path / 'examples'), 'type': EXAMPLES_TYPE}]}}}}
    inputs_spec = {'parameters': {'input_base': {'parameterType': 'STRING'},
                                  'input_config': {'parameterType': 'STRING'}}}
    return executor_input, inputs_spec, output_file


def _example_gen_check(tmp_path, data, pattern):
    """(ours, TFX's driver's) findings on the same invocation, as {parameter: value}."""
    executor_input, inputs_spec, output_file = _example_gen_invocation(tmp_path, data, pattern)
    kfp_entrypoint.run_pre_cache_check(
        kfp_entrypoint.executor_path(csv_example_gen.Executor),
        executor_input, inputs_spec)
    ours = json.loads(output_file.read_text())['parameterValues']
    tfx_example_gen_driver.main(argparse.Namespace(
        json_serialized_invocation_args=json.dumps(executor_input),
        json_serialized_inputs_spec_args=json.dumps(inputs_spec)))
    theirs = json.loads(output_file.read_text())['parameterValues']
    return ours, theirs


def test_the_example_gen_check_finds_what_tfx_s_driver_finds_and_sees_a_new_file(tmp_path):
    data = tmp_path / 'data'
    for span in (1, 2):
        os.makedirs(data / f'span-{span}')
        (data / f'span-{span}' / 'rows.csv').write_text('a,b\n1,2\n')
    ours, theirs = _example_gen_check(tmp_path, data, 'span-{SPAN}/*.csv')
    assert ours == {key: theirs[key] for key in ours}
    assert set(ours) == set(kfp_entrypoint.pre_cache_check(
        kfp_entrypoint.executor_path(csv_example_gen.Executor)).outputs)
    assert ours['span'] == 2
    assert json.loads(ours['input_config'])['splits'][0]['pattern'] == 'span-2/*.csv'
    (data / 'span-2' / 'more.csv').write_text('a,b\n3,4\n')
    again, _ = _example_gen_check(tmp_path, data, 'span-{SPAN}/*.csv')
    assert again['input_fingerprint'] != ours['input_fingerprint']
    assert again['span'] == ours['span']


def test_the_serving_check_names_the_newest_version(tmp_path):
    path = kfp_entrypoint.executor_path(serving_baseline.Executor)
    serving = tmp_path / 'serving'

    def check():
        output_file = tmp_path / 'output_metadata.json'
        kfp_entrypoint.run_pre_cache_check(
            path, {'inputs': {'parameterValues': {'serving_dir': str(serving)}},
                   'outputs': {'outputFile': str(output_file)}},
            {'parameters': {'serving_dir': {'parameterType': 'STRING'}}})
        return json.loads(output_file.read_text())['parameterValues']

    assert check() == {serving_baseline.SERVING_VERSION_KEY: ''}
    for version in ('9', '10', '.incomplete-11-1'):
        os.makedirs(serving / version)
    assert check() == {serving_baseline.SERVING_VERSION_KEY: '10'}
