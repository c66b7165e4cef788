"""Serving latency of a pushed model: raw rows -> serialized tf.Examples -> `serving_default`.

    .venv/bin/python bench/serving_latency.py --model outputs/serving_model [--data CSV]
                                              [--batches 1,32,256] [--seconds 5]

`--model` is a SavedModel directory or a Pusher's serving directory (its newest version is used).
The rows come from the bundled CSV by default, typed as the config's schema says, labels left out.
For each batch size the script calls the signature in a loop for `--seconds` after a warm-up and
prints p50 and p99 latency per call and examples per second, as a Markdown table.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from pipeline.config import PipelineConfig
from pipeline.datasets import ecommerce


def saved_model_dir(path: str) -> str:
    """`path` itself, or the newest numbered version under a serving directory."""
    if tf.saved_model.contains_saved_model(path):
        return path
    versions = sorted((name for name in os.listdir(path) if name.isdigit()), key=int)
    if not versions:
        sys.exit(f'error: {path} holds no SavedModel and no numbered model version')
    return os.path.join(path, versions[-1])


def serialized_examples(csv_path: str, config: PipelineConfig, rows: int) -> np.ndarray:
    """Serialized tf.Examples of the first `rows` rows, typed as the schema says, labels left out."""
    schema = io_utils.parse_pbtxt_file(config.schema, schema_pb2.Schema())
    types = {feature.name: feature.type for feature in schema.feature}
    frame = pd.read_csv(csv_path, nrows=rows).drop(columns=list(config.label_columns))
    examples = []
    for record in frame.to_dict('records'):
        feature = {}
        for name, value in record.items():
            if pd.isna(value):
                continue
            if types[name] == schema_pb2.INT:
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            elif types[name] == schema_pb2.FLOAT:
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
            else:
                feature[name] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        examples.append(tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString())
    return np.array(examples, dtype=object)


def measure(serve, examples: np.ndarray, batch: int, seconds: float):
    """(p50 ms, p99 ms, examples per second) of calls on `batch` examples."""
    batches = [tf.constant(examples[i:i + batch]) for i in range(0, len(examples) - batch + 1, batch)]
    for inputs in batches[:5]:
        serve(examples=inputs)
    latencies = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(latencies) < 50:
        inputs = batches[len(latencies) % len(batches)]
        begin = time.perf_counter()
        serve(examples=inputs)
        latencies.append(time.perf_counter() - begin)
    latencies = np.array(latencies)
    return (np.percentile(latencies, 50) * 1e3, np.percentile(latencies, 99) * 1e3,
            batch * len(latencies) / latencies.sum())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True,
                        help='a SavedModel, or a serving directory of numbered versions')
    parser.add_argument('--data', default=os.path.join(PipelineConfig().data, ecommerce.CSV_NAME),
                        help='a CSV of raw rows (default: the bundled data)')
    parser.add_argument('--batches', default='1,32,256', help='batch sizes, comma-separated')
    parser.add_argument('--seconds', type=float, default=5.0, help='timed seconds per batch size')
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batches.split(',')]

    path = saved_model_dir(args.model)
    serve = tf.saved_model.load(path).signatures['serving_default']
    examples = serialized_examples(args.data, PipelineConfig(), max(batch_sizes) * 20)
    print(f'model: {path}')
    print(f'machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, '
          f'TensorFlow {tf.__version__}')
    print('\n| batch | p50 ms | p99 ms | examples/s |\n|---:|---:|---:|---:|')
    for batch in batch_sizes:
        p50, p99, rate = measure(serve, examples, batch, args.seconds)
        print(f'| {batch} | {p50:.2f} | {p99:.2f} | {rate:,.0f} |')


if __name__ == '__main__':
    main()
