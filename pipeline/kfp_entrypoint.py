"""The entrypoint of every task of the open-source Kubeflow Pipelines spec (`kubeflow_runner.py
--backend kfp`): it repairs the executor input that backend's driver sends, and hands it to TFX's
own entrypoint (kubeflow_v2_run_executor), which cannot take it as sent.

    python -m pipeline.kfp_entrypoint --executor_class_path ... \\
        --json_serialized_invocation_args '{{$}}' --json_serialized_inputs_spec_args '{...}'

The repair: the open-source driver passes each upstream artifact with an empty type (its
`instanceSchema` is ""), where TFX's entrypoint reads the artifact class from that type and fails
(`'NoneType' object has no attribute 'get'`); the type is the one the component declares for that
input, which kubeflow_runner.py adds to the inputs spec the task passes. The process then runs
TFX's entrypoint as `python -m` would run it, with the repaired input in place of the one given
(in the same process rather than an exec of a new one: the pod starts one Python, and imports
TensorFlow and TFX once).

With `--pre_cache_check`, the entrypoint instead runs a component's check before the cache
(`pre_cache_check()`) and writes what it finds as the task's output parameters. Vertex AI runs such a
check (TFX's `lifecycle.preCacheCheck` of the ExampleGen) and makes its result part of the cache
key; the open-source backend never runs it, and would reuse the ExampleGen's output forever once
cached. kubeflow_runner.py compiles each check as a task of its own, never cached, whose outputs
the component's task takes as parameters: a task is then reused exactly while its check finds the
same thing.
"""

import argparse
import copy
import dataclasses
import functools
import json
import os
import runpy
import sys
from typing import Any, Callable, Dict, List, Optional

TFX_ENTRYPOINT = 'tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor'
EXECUTOR_FLAG = '--executor_class_path'
INVOCATION_FLAG = '--json_serialized_invocation_args'
INPUTS_SPEC_FLAG = '--json_serialized_inputs_spec_args'
PRE_CACHE_CHECK_FLAG = '--pre_cache_check'


class ExecutorInputError(ValueError):
    """An executor input that cannot be repaired."""


def repair_executor_input(executor_input: Dict, inputs_spec: Dict) -> Dict:
    """`executor_input` (the JSON form of an ExecutorInput) with each input artifact's empty type
    replaced by the type `inputs_spec` (a ComponentInputsSpec's JSON form) declares for it."""
    repaired = copy.deepcopy(executor_input)
    declared = inputs_spec.get('artifacts', {})
    for key, artifacts in repaired.get('inputs', {}).get('artifacts', {}).items():
        for artifact in artifacts.get('artifacts', []):
            given = artifact.get('type') or {}
            if given.get('schemaTitle') or (given.get('instanceSchema') or '').strip():
                continue
            artifact_type = declared.get(key, {}).get('artifactType')
            if not artifact_type:
                raise ExecutorInputError(
                    f'input artifact {key!r} ({artifact.get("uri")}) came without a type, and the '
                    'task\'s inputs spec declares none for it (compile the spec with '
                    'kubeflow_runner.py --backend kfp)')
            artifact['type'] = copy.deepcopy(artifact_type)
    return repaired


@dataclasses.dataclass(frozen=True)
class PreCacheCheck:
    """What a component's check finds before the cache: `outputs` names each output parameter
    with its KFP type; `find` maps the task's execution properties to their values."""

    outputs: Dict[str, str]
    find: Callable[[Dict[str, Any]], Dict[str, Any]]


def _example_gen_inputs(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """The span, fingerprint and span-resolved input config of a file-based ExampleGen's input,
    as TFX's own check (tfx.orchestration.kubeflow.v2.file_based_example_gen.driver) finds them."""
    # pylint: disable=import-outside-toplevel
    from tfx.components.example_gen import input_processor
    from tfx.components.example_gen import utils as example_gen_utils
    from tfx.proto import example_gen_pb2, range_config_pb2
    from tfx.types import standard_component_specs as keys
    from tfx.utils import proto_utils

    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[keys.INPUT_CONFIG_KEY], input_config)
    range_config = None
    if exec_properties.get(keys.RANGE_CONFIG_KEY):
        range_config = range_config_pb2.RangeConfig()
        proto_utils.json_to_proto(exec_properties[keys.RANGE_CONFIG_KEY], range_config)
    processor = input_processor.FileBasedInputProcessor(
        exec_properties[keys.INPUT_BASE_KEY], input_config.splits, range_config)
    span, version = processor.resolve_span_and_version()
    if version is not None:
        raise ExecutorInputError('input patterns with {VERSION} are not supported on open-source '
                                 'Kubeflow Pipelines (--backend kfp)')
    for split in input_config.splits:
        split.pattern = processor.get_pattern_for_span_version(split.pattern, span, version)
    return {example_gen_utils.SPAN_PROPERTY_NAME: span,
            example_gen_utils.FINGERPRINT_PROPERTY_NAME:
                processor.get_input_fingerprint(span, version),
            keys.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config)}


def _serving_version(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    # pylint: disable=import-outside-toplevel
    from components import serving_baseline
    return {serving_baseline.SERVING_VERSION_KEY: serving_baseline.serving_version(
        exec_properties[serving_baseline.SERVING_DIR_KEY])}


def executor_path(executor: type) -> str:
    """An executor class's path as the compiled spec names it (`--executor_class_path`)."""
    return f'{executor.__module__}.{executor.__qualname__}'


@functools.lru_cache(maxsize=None)
def _pre_cache_checks() -> Dict[str, PreCacheCheck]:
    """{executor class path: its check}."""
    # pylint: disable=import-outside-toplevel
    from tfx.components.example_gen import utils as example_gen_utils
    from tfx.types import standard_component_specs as keys

    from components import csv_example_gen, serving_baseline

    return {
        executor_path(csv_example_gen.Executor): PreCacheCheck(
            {example_gen_utils.SPAN_PROPERTY_NAME: 'NUMBER_INTEGER',
             example_gen_utils.FINGERPRINT_PROPERTY_NAME: 'STRING',
             keys.INPUT_CONFIG_KEY: 'STRING'}, _example_gen_inputs),
        executor_path(serving_baseline.Executor): PreCacheCheck(
            {serving_baseline.SERVING_VERSION_KEY: 'STRING'}, _serving_version),
    }


def pre_cache_check(executor_path: str) -> Optional[PreCacheCheck]:
    """The check of the executor at `executor_path` (module.Class), if it has one."""
    return _pre_cache_checks().get(executor_path)


def flag_value(argv: List[str], flag: str) -> Optional[str]:
    """The value after `flag` in `argv` (a task's command line), or None."""
    return argv[argv.index(flag) + 1] if flag in argv else None


def run_pre_cache_check(executor_path: str, executor_input: Dict, inputs_spec: Dict):
    """Runs the check of `executor_path` on the task's parameters and writes its findings as
    ExecutorOutput parameter values into the executor input's `outputFile`."""
    # pylint: disable=import-outside-toplevel
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils

    check = pre_cache_check(executor_path)
    if check is None:
        raise ExecutorInputError(f'{executor_path} has no pre-cache check')
    parsed_input = json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput(),
                                         ignore_unknown_fields=True)
    parsed_spec = json_format.ParseDict(inputs_spec, pipeline_spec_pb2.ComponentInputsSpec(),
                                        ignore_unknown_fields=True)
    exec_properties = kubeflow_v2_entrypoint_utils.parse_execution_properties(
        parsed_input.inputs.parameter_values, parsed_input.inputs.parameters, parsed_spec)
    output = pipeline_spec_pb2.ExecutorOutput()
    for name, value in check.find(exec_properties).items():
        if check.outputs[name] == 'STRING':
            output.parameter_values[name].string_value = value
        else:
            output.parameter_values[name].number_value = value
    output_file = parsed_input.outputs.output_file
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    with open(output_file, 'w') as f:
        f.write(json_format.MessageToJson(output, sort_keys=True))


def main(argv: List[str]):
    """Repairs the invocation in `argv` (TFX's entrypoint's flags) and runs TFX's entrypoint on
    it, or with --pre_cache_check runs the executor's check."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(PRE_CACHE_CHECK_FLAG, action='store_true')
    args, tfx_argv = parser.parse_known_args(argv)
    invocation, spec = flag_value(tfx_argv, INVOCATION_FLAG), flag_value(tfx_argv, INPUTS_SPEC_FLAG)
    if invocation is None:
        parser.error(f'{INVOCATION_FLAG} is required')
    executor_input, inputs_spec = json.loads(invocation), json.loads(spec or '{}')
    if args.pre_cache_check:
        run_pre_cache_check(flag_value(tfx_argv, EXECUTOR_FLAG) or '', executor_input, inputs_spec)
        return
    tfx_argv[tfx_argv.index(INVOCATION_FLAG) + 1] = json.dumps(
        repair_executor_input(executor_input, inputs_spec))
    sys.argv = [TFX_ENTRYPOINT, *tfx_argv]
    runpy.run_module(TFX_ENTRYPOINT, run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    main(sys.argv[1:])
