"""Our Transform executor, run for real beside TFX's own on a few hundred examples: it reads and
writes them differently (components/transform.py) and must compute the same."""

import csv
import glob
import json
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.transform import executor as tfx_executor
from tfx.proto import transform_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs as keys
from tfx.utils import io_utils, proto_utils

from components import transform
from local_runner import LOCAL_BEAM_ARGS
from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.pipeline import PREPROCESSING_FN
from trainer_module.serving import row_to_example

CONFIG = PipelineConfig()
SPLITS = {'train': 300, 'validation': 60}


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
    """The bundled data's first rows as ExampleGen writes them, some values missing."""
    schema = io_utils.parse_pbtxt_file(CONFIG.schema, schema_pb2.Schema())
    types = {feature.name: feature.type for feature in schema.feature}
    with open(os.path.join(PROJECT_DIR, 'data', 'ecommerce', 'ecommerce.csv')) as f:
        rows = [{name: (None if value == '' else float(value)
                        if types[name] == schema_pb2.FLOAT else value)
                 for name, value in row.items()}
                for row in list(csv.DictReader(f))[:sum(SPLITS.values())]]
    for i, row in enumerate(rows[::7]):
        row[list(row)[i % len(row)]] = None
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path_factory.mktemp('examples'))
    artifact.split_names = artifact_utils.encode_split_names(list(SPLITS))
    start = 0
    for split, count in SPLITS.items():
        os.makedirs(os.path.join(artifact.uri, f'Split-{split}'))
        path = os.path.join(artifact.uri, f'Split-{split}', 'data_tfrecord-00000-of-00001.gz')
        with tf.io.TFRecordWriter(path, options='GZIP') as writer:
            for row in rows[start:start + count]:
                writer.write(row_to_example(row, types))
        start += count
    schema_artifact = standard_artifacts.Schema()
    schema_artifact.uri = os.path.dirname(CONFIG.schema)
    return {keys.EXAMPLES_KEY: [artifact], keys.SCHEMA_KEY: [schema_artifact]}


def _run(executor_class, inputs, output):
    graph, transformed = standard_artifacts.TransformGraph(), standard_artifacts.Examples()
    graph.uri, transformed.uri = str(output / 'graph'), str(output / 'examples')
    # As pipeline.create_pipeline() configures the component.
    executor_class(executor_class.Context(beam_pipeline_args=list(LOCAL_BEAM_ARGS),
                                          tmp_dir=str(output / 'tmp'), unique_id='1')).Do(
        inputs, {keys.TRANSFORM_GRAPH_KEY: [graph], keys.TRANSFORMED_EXAMPLES_KEY: [transformed]},
        {keys.PREPROCESSING_FN_KEY: PREPROCESSING_FN,
         keys.CUSTOM_CONFIG_KEY: json.dumps(CONFIG.transform_dict()),
         keys.SPLITS_CONFIG_KEY: proto_utils.proto_to_json(transform_pb2.SplitsConfig(
             analyze=['train'], transform=list(SPLITS))),
         keys.FORCE_TF_COMPAT_V1_KEY: 1, keys.DISABLE_STATISTICS_KEY: 1})
    return graph.uri, transformed.uri


def _read(pattern):
    """The examples, serialized with their features in one order (a missing label is NaN, which
    equals no NaN as a float)."""
    return [tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True)
            for record in tf.data.TFRecordDataset(sorted(glob.glob(pattern)), 'GZIP')]


def test_the_same_vocabularies_and_transformed_examples_as_tfx_own_executor(examples, tmp_path):
    ours = _run(transform.Executor, examples, tmp_path / 'ours')
    theirs = _run(tfx_executor.Executor, examples, tmp_path / 'theirs')
    assets = [sorted(glob.glob(os.path.join(graph, 'transform_fn', 'assets', '*')))
              for graph in (ours[0], theirs[0])]
    assert [os.path.basename(path) for path in assets[0]] == [
        os.path.basename(path) for path in assets[1]]
    assert len(assets[0]) == len(CONFIG.sparse_features)
    for a, b in zip(*assets):
        assert open(a, 'rb').read() == open(b, 'rb').read()
    for split, count in SPLITS.items():
        ours_split, theirs_split = (_read(os.path.join(uri, f'Split-{split}', '*.gz'))
                                    for uri in (ours[1], theirs[1]))
        assert len(ours_split) == count
        assert ours_split == theirs_split
