"""Serving latency of a pushed model, through both signatures: serialized tf.Examples into
`serving_default`, and named raw feature tensors into `serving_raw` (what a REST client sends).

    .venv/bin/python bench/serving_latency.py --model outputs/serving_model [--data CSV]
                                              [--batches 1,32,256] [--seconds 5]

`--model` is a SavedModel directory or a Pusher's serving directory (its newest version is used).
The rows come from the bundled CSV by default, typed as the config's schema says, labels left out.
For each batch size the script calls each signature in a loop for `--seconds` after a warm-up, the
two signatures taking turns a second at a time, and prints p50 and p99 latency per call and
examples per second, as a Markdown table. The time to build the inputs (serializing tf.Examples,
stacking a JSON body's values) is left out of both.
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
from pipeline.predict import csv_rows, saved_model_dir
from trainer_module.serving import instances_to_inputs, row_to_example, signature_input_dtypes
from trainer_module.settings import RAW_SIGNATURE


def serialized_examples(csv_path: str, config: PipelineConfig, rows: int) -> np.ndarray:
    """Serialized tf.Examples of the first `rows` rows, typed as the schema says, labels left out."""
    schema = io_utils.parse_pbtxt_file(config.schema, schema_pb2.Schema())
    types = {feature.name: feature.type for feature in schema.feature}
    frame = pd.read_csv(csv_path, nrows=rows).drop(columns=list(config.label_columns))
    examples = [row_to_example(record, types) for record in frame.to_dict('records')]
    return np.array(examples, dtype=object)


def measure(signatures, inputs, batch: int, seconds: float):
    """{signature name: (p50 ms, p99 ms, examples per second)} of calls on `batch` examples;
    `inputs[name]` lists each signature's keyword arguments per batch. The signatures take turns,
    a second at a time, so that a noisy machine slows both alike."""
    latencies = {name: [] for name in signatures}
    for name, serve in signatures.items():
        for kwargs in inputs[name][:5]:
            serve(**kwargs)
    for _ in range(max(1, round(seconds))):
        for name, serve in signatures.items():
            calls = latencies[name]
            started = time.perf_counter()
            while time.perf_counter() - started < 1.0 or len(calls) < 10:
                kwargs = inputs[name][len(calls) % len(inputs[name])]
                begin = time.perf_counter()
                serve(**kwargs)
                calls.append(time.perf_counter() - begin)
    return {name: (np.percentile(calls, 50) * 1e3, np.percentile(calls, 99) * 1e3,
                   batch * len(calls) / np.sum(calls))
            for name, calls in latencies.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True,
                        help='a SavedModel, or a serving directory of numbered versions')
    parser.add_argument('--data', default=os.path.join(PipelineConfig().data, ecommerce.CSV_NAME),
                        help='a CSV of raw rows (default: the bundled data)')
    parser.add_argument('--batches', default='1,32,256', help='batch sizes, comma-separated')
    parser.add_argument('--seconds', type=float, default=5.0,
                        help='timed seconds per batch size and signature')
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batches.split(',')]

    try:
        path = saved_model_dir(args.model)
    except ValueError as e:
        sys.exit(f'error: {e}')
    loaded = tf.saved_model.load(path)
    signatures = {name: loaded.signatures[name] for name in ('serving_default', RAW_SIGNATURE)}
    count = max(batch_sizes) * 20
    examples = serialized_examples(args.data, PipelineConfig(), count)
    dtypes = signature_input_dtypes(signatures[RAW_SIGNATURE])
    rows = csv_rows(args.data, dtypes)[:count]
    print(f'model: {path}')
    print(f'machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, '
          f'TensorFlow {tf.__version__}')
    print('\n| signature | batch | p50 ms | p99 ms | examples/s |\n|---|---:|---:|---:|---:|')
    for batch in batch_sizes:
        starts = range(0, len(examples) - batch + 1, batch)
        inputs = {'serving_default': [{'examples': tf.constant(examples[i:i + batch])}
                                      for i in starts],
                  RAW_SIGNATURE: [instances_to_inputs(rows[i:i + batch], dtypes) for i in starts]}
        for name, (p50, p99, rate) in measure(signatures, inputs, batch, args.seconds).items():
            print(f'| {name} | {batch} | {p50:.2f} | {p99:.2f} | {rate:,.0f} |')


if __name__ == '__main__':
    main()
