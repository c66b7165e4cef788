"""Beam's TFRecord sink, given a batch of records at a time.

CsvExampleGen's executor (components/csv_example_gen.py) writes its examples in batches, as TFX's
ExampleGen writes them (gzipped TFRecord files through Beam's TFRecord sink) but with one write
per batch rather than one Beam element and one write per record. Beam 2.59 offers its TFRecord
sink only inside `WriteToTFRecord`, which takes one record per element; the sink class
(`_TFRecordSink`) and its record framing (`_TFRecordUtil.write_record`: length, checksums) are
private.

What would let it go: Beam's WriteToTFRecord (or a public sink) taking batches of records; or
writing the framing ourselves on Beam's public FileBasedSink, as components/transform.py does for
Transform's output.
"""

import io
from typing import List

from apache_beam import coders
from apache_beam.io import filesystem, tfrecordio


class BatchTFRecordSink(tfrecordio._TFRecordSink):  # pylint: disable=protected-access
    """Beam's TFRecord sink with the settings TFX's ExampleGen writes with (gzip, by the '.gz'
    suffix; shards as the runner chooses), whose elements are lists of records: each list is
    framed in memory and written at once. `file_path_prefix`: the files' path before the shard
    name."""

    def __init__(self, file_path_prefix: str):
        super().__init__(file_path_prefix, coders.BytesCoder(), file_name_suffix='.gz',
                         num_shards=0, shard_name_template=None,
                         compression_type=filesystem.CompressionTypes.AUTO)

    def write_record(self, file_handle, value: List[bytes]):
        """Writes the records of `value`, framed as TFRecords, in one write."""
        framed = io.BytesIO()
        for record in value:
            tfrecordio._TFRecordUtil.write_record(framed, record)  # pylint: disable=protected-access
        file_handle.write(framed.getvalue())
