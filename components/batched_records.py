"""tf.Examples in TFRecord files, read a batch of records at a time (Transform and the Evaluators).

TFX's components read tf.Examples through tfx_bsl's `TFExampleRecord`, whose Beam source is Beam's
TFRecord source: one Beam element per record, each read, checksummed and decompressed in Python and
passed through Beam's per-element machinery before tfx_bsl batches them again. Profiles of
Transform and of the Evaluators found a large share of their time there. `BatchedTFExampleRecord`
reads each file with tf.data, `BATCH_RECORDS` records at a time, and decodes each batch at once
(`RecordDecoder`): the same RecordBatches (with the raw records where a component asks for them,
as the Evaluators do for TFMA), fewer and larger.
"""

from typing import Any, List, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import record_based_tfxio, tf_example_record, tfxio

# Records per batch read: tfx_bsl's own cap when it batches by size (batch_util), where Beam's
# tuning otherwise stops at 1,000.
BATCH_RECORDS = 8192


def _read_batches(path: str):
    compression = 'GZIP' if path.endswith('.gz') else ''
    for records in tf.data.TFRecordDataset(path, compression_type=compression).batch(
            BATCH_RECORDS).as_numpy_iterator():
        yield records.tolist()


# The Arrow types tfx_bsl's decoder gives each tf.Example value type, and TensorFlow's for them.
_PARSED_TYPES = {pa.large_list(pa.int64()): tf.int64, pa.large_list(pa.float32()): tf.float32,
                 pa.large_list(pa.large_binary()): tf.string}


class RecordDecoder:
    """tfx_bsl's decoder of serialized tf.Examples to an Arrow RecordBatch, made faster where the
    schema allows (docs/performance.md): TensorFlow's `parse_example` parses the batch (in C++, on
    every core) and its values become the RecordBatch's columns. tfx_bsl's decoder decodes the
    batches where parsing
    could give other than what tfx_bsl gives, or that it refuses, so every RecordBatch and every
    error is tfx_bsl's:
    - a schema with features other than plain int, float or bytes lists, or none at all;
    - a batch where some example has no value for a feature (tfx_bsl tells a missing feature
      (null) from an empty list, parsing does not);
    - a batch that parsing refuses (a value of another type than the schema's, a broken record).
    """

    def __init__(self, serialized_schema: Optional[bytes]):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder(serialized_schema)
        arrow_schema = self._decoder.ArrowSchema() if serialized_schema is not None else None
        self._spec = None
        if arrow_schema is not None and all(field.type in _PARSED_TYPES
                                            for field in arrow_schema):
            self._arrow_schema = arrow_schema
            self._spec = {field.name: tf.io.VarLenFeature(_PARSED_TYPES[field.type])
                          for field in arrow_schema}

    def decode(self, records: List[bytes]) -> pa.RecordBatch:
        """Serialized tf.Examples -> their RecordBatch, a row per record."""
        return self._parsed(records) or self._decoder.DecodeBatch(records)

    def _parsed(self, records: List[bytes]) -> Optional[pa.RecordBatch]:
        if self._spec is None or not records:
            return None
        try:
            parsed = tf.io.parse_example(tf.constant(records, tf.string), self._spec)
        except tf.errors.InvalidArgumentError:
            return None
        columns = []
        for field in self._arrow_schema:
            values = parsed[field.name]
            counts = np.bincount(values.indices[:, 0].numpy(), minlength=len(records))
            if not counts.all():
                return None
            offsets = np.zeros(len(records) + 1, np.int64)
            np.cumsum(counts, out=offsets[1:])
            columns.append(pa.LargeListArray.from_arrays(
                pa.array(offsets), pa.array(values.values.numpy(), field.type.value_type)))
        return pa.RecordBatch.from_arrays(columns, schema=self._arrow_schema)


class DecodeFn(beam.DoFn):
    """Batches of serialized tf.Examples -> RecordBatches, by `RecordDecoder` (a subclass's
    `setup` may make another decoder with the same `decode`), with the raw records as the column
    `raw_record_column_name` where one is named."""

    def __init__(self, schema, raw_record_column_name: Optional[str]):
        self._schema = schema.SerializeToString() if schema is not None else None
        self._raw_record_column_name = raw_record_column_name
        self._decoder: Optional[Any] = None  # made on the worker

    def setup(self):
        """Makes the decoder, on the worker."""
        self._decoder = RecordDecoder(self._schema)

    def process(self, records: List[bytes]):
        """One batch of records -> its RecordBatch."""
        assert self._decoder is not None  # setup() ran
        decoded = self._decoder.decode(records)
        if self._raw_record_column_name is not None:
            decoded = record_based_tfxio.AppendRawRecordColumn(
                decoded, self._raw_record_column_name, records)
        yield decoded


class BatchedTFExampleRecord(tf_example_record.TFExampleRecord):
    """tfx_bsl's TFExampleRecord whose Beam source reads a file at a time, in batches of
    `BATCH_RECORDS` records."""

    def BeamSource(self, batch_size: Optional[int] = None) -> beam.PTransform:
        """A PTransform from a pipeline to RecordBatches of the files' records, `BATCH_RECORDS`
        rows each (a file's last one fewer); `batch_size` is ignored."""
        del batch_size  # Batches are BATCH_RECORDS long (TFX's components ask for none).
        patterns = self._file_pattern
        read_batches = self._batch_reader()
        decode = self._decode_fn(self._GetSchemaForDecoding(), self.raw_record_column_name)

        @beam.ptransform_fn
        def read(pipeline_or_pcoll):
            return (pipeline_or_pcoll.pipeline
                    | 'Patterns' >> beam.Create(patterns)
                    # Sorted: the same files in the same order on every run.
                    | 'Files' >> beam.FlatMap(lambda pattern: sorted(tf.io.gfile.glob(pattern)))
                    # A worker per file on a runner with several.
                    | 'Spread' >> beam.Reshuffle()
                    | 'Read' >> beam.FlatMap(read_batches)
                    | 'Decode' >> beam.ParDo(decode))

        return read()  # pylint: disable=no-value-for-parameter

    def _batch_reader(self):
        """A file's path -> its records in batches (a subclass may read otherwise)."""
        return _read_batches

    def _decode_fn(self, schema, raw_record_column_name: Optional[str]) -> beam.DoFn:
        """The DoFn that decodes those batches (a subclass may decode otherwise)."""
        return DecodeFn(schema, raw_record_column_name)

    def _ProjectImpl(self, tensor_names: List[str]) -> tfxio.TFXIO:
        projected = super()._ProjectImpl(tensor_names)
        return batched(projected)


def batched(source: tfxio.TFXIO) -> tfxio.TFXIO:
    """`source` read in batches where it is a plain TFExampleRecord; any other TFXIO as given."""
    if type(source) not in (tf_example_record.TFExampleRecord, BatchedTFExampleRecord):
        return source
    return BatchedTFExampleRecord(file_pattern=source._file_pattern, schema=source._schema,  # pylint: disable=protected-access
                                  raw_record_column_name=source.raw_record_column_name,
                                  telemetry_descriptors=source.telemetry_descriptors)
