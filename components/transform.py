"""TFX's Transform with an executor that reads and writes tf.Examples a batch at a time.

TFX's own Transform reads its input with Beam's TFRecord source and writes its output with Beam's
TFRecord sink, one Beam element per record, each read, checksummed and compressed in Python: a
cProfile of Transform found most of its time there and in the per-element machinery of Beam around
it, and little in TensorFlow (docs/performance.md). This executor reads its input in batches of records
(components/batched_records.py) and writes each transformed batch as one element. The vocabularies,
the transform graph and the transformed examples are TFX's own; only the reading and writing around
them change, through TFX's private processor methods (compat/tfx_transform.py).
"""

import struct
from concurrent import futures
from typing import List, Optional

import apache_beam as beam
import google_crc32c
from apache_beam.io import filebasedsink
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec
from tfx.v1 import components as tfx_components
from tfx_bsl.coders import example_coder

from compat import tfx_transform
from components import batched_records


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack('<I', (((crc >> 15) | (crc << 17)) + 0xa282ead8) & 0xffffffff)


class _BackgroundWrites:
    """A file handle whose writes run on a thread of their own, in order, one at a time, while the
    caller goes on with the next batch: gzip's compression (zlib lets other threads run) was an
    eighth of Transform's time on a click log (docs/performance.md), and now overlaps with the
    TensorFlow work. The same bytes in the same order: the same file."""

    def __init__(self, handle):
        self._handle = handle
        self._thread = futures.ThreadPoolExecutor(max_workers=1)
        self._pending: Optional[futures.Future] = None

    def _wait(self):
        if self._pending is not None:
            self._pending.result()  # its error, if any, raised here
            self._pending = None

    def write(self, data: bytes):
        self._wait()  # one write in flight: a batch's bytes in memory, not a queue of them
        self._pending = self._thread.submit(self._handle.write, data)

    def close(self):
        try:
            self._wait()
        finally:
            self._thread.shutdown()
            self._handle.close()  # also after a failed write: the file is not left open


class _TFRecordBatchSink(filebasedsink.FileBasedSink):
    """Beam's TFRecord sink for elements that are lists of records: one compressed write each,
    in the background (`_BackgroundWrites`)."""

    def __init__(self, file_path_prefix: str, file_name_suffix: str):
        super().__init__(file_path_prefix=file_path_prefix, coder=None,
                         file_name_suffix=file_name_suffix,
                         mime_type='application/octet-stream')

    def open(self, temp_path):
        return _BackgroundWrites(super().open(temp_path))

    def write_record(self, file_handle, value: List[bytes]):
        chunks: List[bytes] = []
        for record in value:
            length = struct.pack('<Q', len(record))
            chunks += (length, _masked_crc(length), record, _masked_crc(record))
        file_handle.write(b''.join(chunks))


class _EncodeFn(beam.DoFn):

    def __init__(self, schema):
        self._schema = schema
        self._encoder: Optional[example_coder.RecordBatchToExamplesEncoder] = None  # on the worker

    def setup(self):
        self._encoder = example_coder.RecordBatchToExamplesEncoder(self._schema)

    def process(self, batch):
        assert self._encoder is not None  # setup() ran
        record_batch, _ = batch
        yield self._encoder.encode(record_batch)


@beam.ptransform_fn
@beam.typehints.with_input_types(tuple)
def _WriteBatches(pcoll, schema, output_path: str):
    """Transformed batches (RecordBatch, pass-through features) -> a gzipped TFRecord write of
    each batch's tf.Examples."""
    return (pcoll
            | 'Encode' >> beam.ParDo(_EncodeFn(schema))
            | 'Write' >> beam.io.Write(_TFRecordBatchSink(output_path, '.gz')))


class _Processor(tfx_transform.TransformProcessor):
    """TFX's processor, reading and writing batches of records (see the module's docstring)."""
    read = staticmethod(batched_records.batched)
    write_tfrecords = staticmethod(_WriteBatches)


class Executor(transform_executor.Executor):
    """TFX's Transform executor with `_Processor` for its Beam pipeline."""

    def Do(self, input_dict, output_dict, exec_properties):
        """TFX's Do, its Beam pipeline run by `_Processor`."""
        with tfx_transform.processor(_Processor):
            super().Do(input_dict, output_dict, exec_properties)


class Transform(tfx_components.Transform):
    """TFX's Transform component with `Executor`."""
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
