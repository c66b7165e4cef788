"""What both regenerate scripts beside this file start from: the first rows of the bundled data,
data/ecommerce/ecommerce.csv, as a one-split Examples artifact, with the default config's Schema
artifact. Not a test module: the scripts import it by path.
"""

import csv
import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from pipeline.config import PROJECT_DIR, PipelineConfig
from trainer_module.serving import row_to_example


def bundled_examples(scratch: str, split: str, rows: int):
    """(Examples, Schema) artifacts: `rows` bundled rows as split `split` under `scratch`."""
    config = PipelineConfig()
    schema = io_utils.parse_pbtxt_file(config.schema, schema_pb2.Schema())
    types = {feature.name: feature.type for feature in schema.feature}
    with open(os.path.join(PROJECT_DIR, 'data', 'ecommerce', 'ecommerce.csv')) as f:
        records = [{name: float(value) if types[name] == schema_pb2.FLOAT else value
                    for name, value in row.items()} for row in list(csv.DictReader(f))[:rows]]
    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(scratch, 'examples')
    examples.split_names = artifact_utils.encode_split_names([split])
    os.makedirs(os.path.join(examples.uri, f'Split-{split}'))
    with tf.io.TFRecordWriter(os.path.join(examples.uri, f'Split-{split}', 'data.gz'),
                              options='GZIP') as writer:
        for record in records:
            writer.write(row_to_example(record, types))
    schema_artifact = standard_artifacts.Schema()
    schema_artifact.uri = os.path.dirname(config.schema)
    return examples, schema_artifact
