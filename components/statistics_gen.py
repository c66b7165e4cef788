"""TFX's StatisticsGen with an executor that reads tf.Examples a batch at a time.

TFX's own StatisticsGen reads each split through tfx_bsl's TFExampleRecord: Beam's TFRecord
source, one Beam element per record, batched again by Beam (up to 1,000 records) and decoded by
tfx_bsl's decoder without a schema (StatisticsGen runs before the curated schema is imported: it
has none), then TFDV's `GenerateStatistics`. At 1M rows it was the slowest data step
(docs/performance.md). Reading batches as Transform and the Evaluators do (components/
batched_records.py) left more than half of its time in tfx_bsl's schema-less decoder (about 15 us
a record of 16 features), and much of the rest in Beam elements: TFDV's top values make one per
distinct value of a feature in each batch.

This executor is TFX's, run with each split's TFXIO swapped (compat/tfx_statistics_gen.py) for
`BatchedExamples`: each file read in batches of up to BATCH_RECORDS records (the next records read
and decompressed meanwhile), each batch decoded by `SchemalessDecoder`, which parses it with
TensorFlow's parser where that gives tfx_bsl's RecordBatch and leaves it to tfx_bsl's decoder
otherwise. Everything else is TFX's own `Do`: the stats options (and a schema) from the
component's exec properties, the splits and `exclude_splits`, the output (`Split-<name>/
FeatureStats.pb`), the span and the properties set on the statistics artifact, and TFDV's own
statistics generators over the RecordBatches.

Only the batches' boundaries change. TFDV's statistics do not depend on them, but for the last
bits of means and standard deviations (sums of floats, added in another order: TFX's own vary so
from run to run, its Beam combine spreading batches over randomly chosen keys) and the order of
the features in the output (that in which TFDV first meets them; consumers look features up by
name). Counts, missing counts, values per row, minima and maxima, top values, unique counts,
histograms and quantiles came out the same as TFX's own (tests/test_statistics_gen.py on small
data; bench/statistics_gen.py at 1M rows; TFDV's quantiles are approximate, epsilon 0.01, and
might in principle differ on other data).
"""

from typing import Iterator, List, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
from tfx.components.statistics_gen import executor as statistics_gen_executor
from tfx.dsl.components.base import executor_spec
from tfx.v1 import components as tfx_components
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import tf_example_record, tfxio

from compat import tfx_statistics_gen
from components import batched_records

# The Arrow types tfx_bsl's schema-less decoder gives each kind of tf.Example values, and
# TensorFlow's for them.
_PARSED_TYPES = {pa.large_list(pa.int64()): tf.int64, pa.large_list(pa.float32()): tf.float32,
                 pa.large_list(pa.large_binary()): tf.string}
# The records of a batch whose features and types tfx_bsl's decoder finds for SchemalessDecoder.
SAMPLE_RECORDS = 256
# A batch read ends once it holds this many records, or this many bytes of them. TFDV's top values
# cost a Beam element per distinct value of a feature in a batch, and decoding costs some per
# batch: batches larger than batched_records' make less of both (docs/performance.md); the bytes
# bound the memory a batch of wide records takes.
BATCH_RECORDS = 65536
BATCH_BYTES = 32 << 20


def _read_batches(path: str) -> Iterator[List[bytes]]:
    """The records of a TFRecord file (gzipped if its name ends in .gz), in batches that end once
    they hold BATCH_RECORDS records or BATCH_BYTES bytes (the last one may hold fewer); the next
    chunk of batched_records.BATCH_RECORDS records (or fewer) is read and decompressed while the
    caller works on a batch."""
    compression = 'GZIP' if path.endswith('.gz') else ''
    batch: List[bytes] = []
    size = 0
    for records in tf.data.TFRecordDataset(path, compression_type=compression).batch(
            min(batched_records.BATCH_RECORDS, BATCH_RECORDS)).prefetch(1).as_numpy_iterator():
        batch += records.tolist()
        size += sum(map(len, records))
        if len(batch) >= BATCH_RECORDS or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class SchemalessDecoder:
    """tfx_bsl's decoder of serialized tf.Examples without a schema, made faster where it can
    be: tfx_bsl decodes the first `SAMPLE_RECORDS` records of a batch, which gives the features
    and their Arrow types; TensorFlow's `parse_example` parses the whole batch (in C++) for those
    features, and its values become the RecordBatch's columns, in the order and of the types
    tfx_bsl gives them, null in the rows without the feature. tfx_bsl's decoder decodes the
    batches where parsing could give other than what it gives, or that it refuses, so every
    RecordBatch and every error is tfx_bsl's:
    - a batch whose sample tfx_bsl refuses or decodes to no feature, or to a feature whose values
      are of no kind (null);
    - a batch where some record holds a feature the sample does not (parsing ignores features it
      was not asked for: `batched_records.features_per_record` counts them on the wire), a
      feature twice, or a feature with an empty list (tfx_bsl tells one from a missing feature,
      parsing does not);
    - a batch that parsing refuses (a value of another kind than the sample's, a broken record).
    """

    def __init__(self):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder()

    def decode(self, records: List[bytes]) -> pa.RecordBatch:
        """Serialized tf.Examples -> their RecordBatch, a row per record."""
        return self._parsed(records) or self._decoder.DecodeBatch(records)

    def _parsed(self, records: List[bytes]) -> Optional[pa.RecordBatch]:
        if not records:
            return None
        try:
            sample = self._decoder.DecodeBatch(records[:SAMPLE_RECORDS])
        except Exception:  # pylint: disable=broad-except  (tfx_bsl's error, raised by decode)
            return None
        schema = sample.schema
        if not schema.names or any(field.type not in _PARSED_TYPES for field in schema):
            return None
        serialized = tf.constant(records, tf.string)
        try:
            entries = batched_records.features_per_record(serialized)
            parsed = tf.io.parse_example(serialized, {
                field.name: tf.io.VarLenFeature(_PARSED_TYPES[field.type]) for field in schema})
        except tf.errors.OpError:
            return None
        counts = [np.bincount(parsed[field.name].indices.numpy()[:, 0], minlength=len(records))
                  for field in schema]
        # A record's features with values are all its features, each once: the others in the
        # sample's are missing from it (null), none has an empty list, none is left unparsed.
        if not (entries == sum((count > 0).astype(np.int64) for count in counts)).all():
            return None
        columns = []
        for field, count in zip(schema, counts):
            offsets = np.zeros(len(records) + 1, np.int64)
            np.cumsum(count, out=offsets[1:])
            missing = count == 0
            columns.append(pa.LargeListArray.from_arrays(
                pa.array(offsets),
                pa.array(parsed[field.name].values.numpy(), field.type.value_type),
                mask=pa.array(missing) if missing.any() else None))
        return pa.RecordBatch.from_arrays(columns, schema=schema)


class _DecodeWithoutSchemaFn(batched_records.DecodeFn):
    """batched_records' decoding with `SchemalessDecoder`."""

    def __init__(self, raw_record_column_name: Optional[str]):
        super().__init__(None, raw_record_column_name)

    def setup(self):
        self._decoder = SchemalessDecoder()


class BatchedExamples(batched_records.BatchedTFExampleRecord):
    """batched_records' TFXIO, which without a schema (StatisticsGen's case) reads each file in
    batches of this module's BATCH_RECORDS (`_read_batches`) and decodes them with
    `SchemalessDecoder`; with a schema, it reads and decodes as batched_records does."""

    def _batch_reader(self):
        """Without a schema, this module's `_read_batches`."""
        if self._GetSchemaForDecoding() is not None:
            return super()._batch_reader()
        return _read_batches

    def _decode_fn(self, schema, raw_record_column_name: Optional[str]) -> beam.DoFn:
        """Without a schema, `SchemalessDecoder`'s DoFn."""
        if schema is not None:
            return super()._decode_fn(schema, raw_record_column_name)
        return _DecodeWithoutSchemaFn(raw_record_column_name)

    def _ProjectImpl(self, tensor_names: List[str]) -> tfxio.TFXIO:
        return batched(super()._ProjectImpl(tensor_names))


def batched(source: tfxio.TFXIO) -> tfxio.TFXIO:
    """`source` read as `BatchedExamples` where it reads tf.Examples from TFRecord files (a
    TFExampleRecord, or batched_records' subclass); any other TFXIO as given."""
    if type(source) not in (tf_example_record.TFExampleRecord,
                            batched_records.BatchedTFExampleRecord, BatchedExamples):
        return source
    return BatchedExamples(file_pattern=source._file_pattern, schema=source._schema,  # pylint: disable=protected-access
                           raw_record_column_name=source.raw_record_column_name,
                           telemetry_descriptors=source.telemetry_descriptors)


class Executor(statistics_gen_executor.Executor):
    """TFX's StatisticsGen executor, reading each split in batches (see the module's docstring)."""

    def Do(self, input_dict, output_dict, exec_properties):
        """TFX's Do, each split read in batches of records."""
        with tfx_statistics_gen.split_tfxio_wrapped(batched):
            super().Do(input_dict, output_dict, exec_properties)


class StatisticsGen(tfx_components.StatisticsGen):
    """TFX's StatisticsGen component with `Executor`: the same statistics, from examples read a
    batch of records at a time (see the module's docstring)."""
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
