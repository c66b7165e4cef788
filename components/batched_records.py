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
from google.protobuf import descriptor_pb2
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


def _wire_descriptors() -> bytes:
    """`decode_proto`'s descriptor source of three messages that read tf.Example's wire format
    without merging: `Example.features` and `Features.feature` as repeated bytes (field 1 of
    each), so that every occurrence of a field is counted (a message field that occurs twice is
    one merged message to protobuf, and only its last occurrence to `decode_proto`), and a map
    entry's key (`Entry.key`, field 1) as bytes."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name='tf_example_wire.proto',
                                              package='tf_example_wire', syntax='proto2')
    for message, name, label in (('Example', 'features', field.LABEL_REPEATED),
                                 ('Features', 'feature', field.LABEL_REPEATED),
                                 ('Entry', 'key', field.LABEL_OPTIONAL)):
        file.message_type.add(name=message).field.add(
            name=name, number=1, type=field.TYPE_BYTES, label=label)
    return b'bytes://' + descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString()


_WIRE = _wire_descriptors()


def features_per_record(records: tf.Tensor, names: Optional[np.ndarray] = None) -> np.ndarray:
    """The map entries (features, a name counted as often as it occurs) in each serialized
    tf.Example, every occurrence of its `features` field counted; with `names` (bytes), only the
    entries of those names."""
    examples = tf.io.decode_proto(records, 'tf_example_wire.Example', ['features'],
                                  [tf.string], descriptor_source=_WIRE)
    occurrences = examples.sizes.numpy()[:, 0]
    if (occurrences == 1).all():  # As protobuf writes a tf.Example with features.
        features, rows = tf.reshape(examples.values[0], [-1]), None
    else:
        features = tf.boolean_mask(examples.values[0], tf.sequence_mask(
            occurrences, tf.shape(examples.values[0])[1]))
        rows = np.repeat(np.arange(len(occurrences)), occurrences)
    decoded = tf.io.decode_proto(features, 'tf_example_wire.Features', ['feature'],
                                 [tf.string], descriptor_source=_WIRE)
    entries = decoded.sizes.numpy()[:, 0]
    if names is not None:
        keys = tf.io.decode_proto(
            tf.boolean_mask(decoded.values[0], tf.sequence_mask(
                entries, tf.shape(decoded.values[0])[1])),
            'tf_example_wire.Entry', ['key'], [tf.string], descriptor_source=_WIRE).values[0]
        named = np.isin(keys.numpy()[:, 0], names)
        entries = np.bincount(np.repeat(np.arange(len(entries)), entries), weights=named,
                              minlength=len(entries)).astype(np.int64)
    if rows is None:
        return entries
    return np.bincount(rows, weights=entries, minlength=len(occurrences)).astype(np.int64)


# The Arrow types tfx_bsl's decoder gives each tf.Example value type, and TensorFlow's for them.
_PARSED_TYPES = {pa.large_list(pa.int64()): tf.int64, pa.large_list(pa.float32()): tf.float32,
                 pa.large_list(pa.large_binary()): tf.string}


def _arrow_values(values: tf.Tensor, value_type: pa.DataType) -> pa.Array:
    """A parsed feature's values as an Arrow array of `value_type`. Strings go over as one buffer
    of their bytes and their offsets: through numpy each would become a Python bytes object, and
    on a click log (tens of history values a row) most of the decoding time went into converting
    the values rather than into parsing them (docs/performance.md)."""
    if value_type != pa.large_binary():
        return pa.array(values.numpy(), value_type)
    offsets = np.zeros(values.shape[0] + 1, np.int64)
    np.cumsum(tf.strings.length(values).numpy(), out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(value_type, values.shape[0], [
        None, pa.py_buffer(offsets), pa.py_buffer(tf.strings.reduce_join(values).numpy())])


class RecordDecoder:
    """tfx_bsl's decoder of serialized tf.Examples to an Arrow RecordBatch, made faster where the
    schema allows (docs/performance.md): TensorFlow's `parse_example` parses the batch (in C++, on
    every core) and its values become the RecordBatch's columns. tfx_bsl's decoder decodes the
    batches where parsing
    could give other than what tfx_bsl gives, or that it refuses, so every RecordBatch and every
    error is tfx_bsl's:
    - a schema with features other than plain int, float or bytes lists, or none at all;
    - a batch where some example has no value for a feature and it cannot be told, from the
      number of the schema's features on the wire (`features_per_record`), that the feature is
      missing (null to tfx_bsl) and not an empty list (an empty list to tfx_bsl; parsing tells
      neither apart): a list column's empty cell is a missing feature
      (components/example_encoder.py), so a batch of click logs with empty histories is parsed;
    - a batch that parsing refuses (a value of another type than the schema's, a broken record).
    """

    def __init__(self, serialized_schema: Optional[bytes]):
        self._decoder = example_coder.ExamplesToRecordBatchDecoder(serialized_schema)
        arrow_schema = self._decoder.ArrowSchema() if serialized_schema is not None else None
        self._spec = None
        if arrow_schema is not None and all(field.type in _PARSED_TYPES
                                            for field in arrow_schema):
            self._arrow_schema = arrow_schema
            self._names = np.array([field.name.encode() for field in arrow_schema], object)
            self._spec = {field.name: tf.io.VarLenFeature(_PARSED_TYPES[field.type])
                          for field in arrow_schema}

    def decode(self, records: List[bytes]) -> pa.RecordBatch:
        """Serialized tf.Examples -> their RecordBatch, a row per record."""
        return self._parsed(records) or self._decoder.DecodeBatch(records)

    def _parsed(self, records: List[bytes]) -> Optional[pa.RecordBatch]:
        if self._spec is None or not records:
            return None
        serialized = tf.constant(records, tf.string)
        try:
            parsed = tf.io.parse_example(serialized, self._spec)
        except tf.errors.InvalidArgumentError:
            return None
        counts = [np.bincount(parsed[field.name].indices[:, 0].numpy(), minlength=len(records))
                  for field in self._arrow_schema]
        with_values = np.sum([count > 0 for count in counts], axis=0, dtype=np.int64)
        incomplete = with_values < len(counts)
        if incomplete.any():
            # A record without values for a feature: missing (null) only if the record's features
            # of the schema on the wire are just those with values (no empty list, none twice);
            # tfx_bsl leaves the others out, as parsing does.
            entries = features_per_record(tf.boolean_mask(serialized, incomplete), self._names)
            if not (entries == with_values[incomplete]).all():
                return None
        columns = []
        for field, count in zip(self._arrow_schema, counts):
            offsets = np.zeros(len(records) + 1, np.int64)
            np.cumsum(count, out=offsets[1:])
            missing = count == 0
            columns.append(pa.LargeListArray.from_arrays(
                pa.array(offsets),
                _arrow_values(parsed[field.name].values, field.type.value_type),
                mask=pa.array(missing) if missing.any() else None))
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
