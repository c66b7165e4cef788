"""Writes transform_graph/ beside this script: the project's Transform (components/transform.py,
configured as pipeline.create_pipeline() configures it, the default config) run on the first ROWS
rows of the bundled data, data/ecommerce/ecommerce.csv. A small Transform output for the tests of
the export and serving (tests/test_serving.py); rerun when preprocessing's output changes.

    .venv/bin/python tests/testdata/ecommerce_transform/regenerate.py
"""

import json
import os
import shutil
import sys
import tempfile

from tfx.proto import transform_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import proto_utils

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))
sys.path.insert(0, os.path.dirname(HERE))

from bundled_examples import bundled_examples  # noqa: E402

from components import transform  # noqa: E402
from local_runner import LOCAL_BEAM_ARGS  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.pipeline import PREPROCESSING_FN  # noqa: E402

ROWS = 50
OUTPUT = os.path.join(HERE, 'transform_graph')


def main():
    config = PipelineConfig()
    with tempfile.TemporaryDirectory() as scratch:
        examples, schema_artifact = bundled_examples(scratch, 'train', ROWS)
        graph, transformed = standard_artifacts.TransformGraph(), standard_artifacts.Examples()
        graph.uri, transformed.uri = (os.path.join(scratch, 'graph'),
                                      os.path.join(scratch, 'transformed'))
        transform.Executor(transform.Executor.Context(
            beam_pipeline_args=list(LOCAL_BEAM_ARGS), tmp_dir=os.path.join(scratch, 'tmp'),
            unique_id='1')).Do(
            {keys.EXAMPLES_KEY: [examples], keys.SCHEMA_KEY: [schema_artifact]},
            {keys.TRANSFORM_GRAPH_KEY: [graph], keys.TRANSFORMED_EXAMPLES_KEY: [transformed]},
            {keys.PREPROCESSING_FN_KEY: PREPROCESSING_FN,
             keys.CUSTOM_CONFIG_KEY: json.dumps(config.transform_dict()),
             keys.SPLITS_CONFIG_KEY: proto_utils.proto_to_json(transform_pb2.SplitsConfig(
                 analyze=['train'], transform=['train'])),
             keys.FORCE_TF_COMPAT_V1_KEY: 1, keys.DISABLE_STATISTICS_KEY: 1})
        shutil.rmtree(OUTPUT, ignore_errors=True)
        shutil.copytree(graph.uri, OUTPUT)
    print(f'wrote {OUTPUT}')


if __name__ == '__main__':
    main()
