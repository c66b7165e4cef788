"""Batches of tf.Examples decode to the RecordBatches, and fail with the errors, of tfx_bsl's own
decoder; a file is read back whole, in batches, with its raw records where asked."""

import apache_beam as beam
import pyarrow as pa
import pytest
import tensorflow as tf
from apache_beam.testing import util as beam_util
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import tf_example_record

from components import batched_records

SCHEMA = text_format.Parse('''
feature { name: "user" type: BYTES }
feature { name: "tags" type: BYTES }
feature { name: "hour" type: INT }
feature { name: "price" type: FLOAT }
''', schema_pb2.Schema())


_LISTS = {schema_pb2.BYTES: 'bytes_list', schema_pb2.INT: 'int64_list',
          schema_pb2.FLOAT: 'float_list'}


def _example(**features) -> bytes:
    """A tf.Example with the values given, each feature of its type in SCHEMA (int if not in it)."""
    types = {feature.name: feature.type for feature in SCHEMA.feature}
    example = tf.train.Example()
    for name, values in features.items():
        values_list = getattr(example.features.feature[name],
                              _LISTS[types.get(name, schema_pb2.INT)])
        values_list.SetInParent()
        values_list.value.extend(values)
    return example.SerializeToString()


FULL = [_example(user=[b'u1'], tags=[b'a', b'b'], hour=[3], price=[1.5], extra=[7]),
        _example(user=[b'u2'], tags=[b'c'], hour=[23, 4], price=[0.25, -2.0]),
        _example(user=[b''], tags=[b'\xff\x00'], hour=[-1], price=[float('inf')])]


def _tfx_bsl(records, schema=SCHEMA):
    return example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString()).DecodeBatch(
        records)


def test_examples_with_every_feature_are_parsed_to_tfx_bsl_s_record_batch():
    decoder = batched_records.RecordDecoder(SCHEMA.SerializeToString())
    parsed = decoder._parsed(FULL)  # pylint: disable=protected-access
    assert parsed is not None  # the fast path, not tfx_bsl's decoder
    assert parsed.equals(_tfx_bsl(FULL)) and parsed.schema.equals(_tfx_bsl(FULL).schema)


def test_a_missing_feature_is_parsed_to_tfx_bsl_s_null():
    """As a list column's empty cell is written (the feature left out), in some rows only."""
    records = FULL + [_example(user=[b'u3'], hour=[1], price=[1.0]),
                      _example(user=[b'u4'], tags=[b'd'], price=[2.0]), _example()]
    decoder = batched_records.RecordDecoder(SCHEMA.SerializeToString())
    parsed = decoder._parsed(records)  # pylint: disable=protected-access
    assert parsed is not None
    assert parsed.equals(_tfx_bsl(records)) and parsed.schema.equals(_tfx_bsl(records).schema)
    assert parsed.column('tags').null_count == 2
    # A feature outside the schema, which both leave out, beside a missing one.
    records.append(_example(user=[b'u5'], hour=[1], price=[1.0], extra=[2]))
    parsed = decoder._parsed(records)  # pylint: disable=protected-access
    assert parsed is not None and parsed.equals(_tfx_bsl(records))


@pytest.mark.parametrize('record', [
    _example(user=[b'u3'], tags=[], hour=[1], price=[1.0]),  # an empty list
    # Twice on the wire (two messages' bytes merge), the second time empty: protobuf keeps that.
    _example(user=[b'u3'], tags=[b'x'], hour=[1], price=[1.0]) + _example(tags=[]),
], ids=['empty', 'empty_the_second_time'])
def test_an_empty_list_is_tfx_bsl_s(record):
    records = FULL + [record]
    decoder = batched_records.RecordDecoder(SCHEMA.SerializeToString())
    assert decoder._parsed(records) is None  # pylint: disable=protected-access
    assert decoder.decode(records).equals(_tfx_bsl(records))


def test_a_value_of_another_type_fails_as_tfx_bsl_fails():
    wrong = tf.train.Example.FromString(_example(user=[b'u3'], tags=[b'x'], price=[1.0]))
    wrong.features.feature['hour'].bytes_list.value.append(b'noon')
    records = FULL + [wrong.SerializeToString()]
    with pytest.raises(Exception) as theirs:
        _tfx_bsl(records)
    with pytest.raises(type(theirs.value), match='hour'):
        batched_records.RecordDecoder(SCHEMA.SerializeToString()).decode(records)


def test_without_a_schema_tfx_bsl_infers_the_columns():
    decoded = batched_records.RecordDecoder(None).decode(FULL)
    assert decoded.equals(example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(FULL))


@pytest.mark.beam
def test_a_file_is_read_in_batches_with_its_raw_records(tmp_path, monkeypatch):
    monkeypatch.setattr(batched_records, 'BATCH_RECORDS', 2)
    path = str(tmp_path / 'part-0.gz')
    with tf.io.TFRecordWriter(path, options='GZIP') as writer:
        for record in FULL:
            writer.write(record)
    source = batched_records.batched(tf_example_record.TFExampleRecord(
        file_pattern=str(tmp_path / '*'), schema=SCHEMA, raw_record_column_name='raw'))
    assert isinstance(source, batched_records.BatchedTFExampleRecord)

    def check(batches):
        assert [batch.num_rows for batch in batches] == [2, 1]
        table = pa.Table.from_batches(batches)
        assert table.column('raw').to_pylist() == [[record] for record in FULL]
        assert table.drop(['raw']).equals(pa.Table.from_batches([_tfx_bsl(FULL)]))

    with beam.Pipeline() as pipeline:
        beam_util.assert_that(pipeline | source.BeamSource(), check)
