"""TFX's Transform, reading its input and writing its TFRecord output through the caller's code.

TFX 1.16's Transform executor runs its Beam pipeline with `TransformProcessor()`, looked up in
its module when its `Do` runs, and the processor reads each input dataset through its private
`_CreateTFXIO` and encodes and writes the transformed examples with its private
`_EncodeAndWrite`, one Beam element per record. `TransformProcessor` here is TFX's with those two
steps given by a subclass (components/transform.py reads and writes batches of records), and
`processor` has TFX's executor run such a subclass.

The batches `write_tfrecords` gets are what TFT's transform gives TFX: (an Arrow RecordBatch of
the transformed examples, the unary pass-through features), whence TFT among the libraries this
module is tested with (compat.TESTED).

What would let it go: TFX's Transform taking a TFXIO for its inputs and a sink for its
materialized output (or writing batches itself) as component or executor arguments.
"""

import contextlib
from typing import Iterator, Type

import apache_beam as beam
from tfx.components.transform import executor as transform_executor
from tfx_bsl.tfxio import tfxio

from compat import patched


class TransformProcessor(transform_executor.TransformProcessor):
    """TFX's processor, reading each input dataset through `read` and writing TFRecord output
    with `write_tfrecords`, which a subclass defines:
    - read(tfxio) -> the TFXIO to read the dataset with (by default the one TFX made);
    - write_tfrecords(schema, output_path) -> the PTransform that encodes and writes the
      transformed batches (tuples of a RecordBatch and the pass-through features) as gzipped
      TFRecord files of tf.Examples with the prefix `output_path`. Other output formats are
      TFX's own."""

    @staticmethod
    def read(source: tfxio.TFXIO) -> tfxio.TFXIO:
        """The TFXIO a dataset is read with, given the one TFX made for it."""
        return source

    @staticmethod
    def write_tfrecords(schema, output_path: str) -> beam.PTransform:
        """The PTransform writing the transformed batches as TFRecords (see the class)."""
        raise NotImplementedError

    def _CreateTFXIO(self, dataset, schema):
        return self.read(super()._CreateTFXIO(dataset, schema))

    # An instance method where TFX's is static, to reach the subclass's `write_tfrecords`.
    def _EncodeAndWrite(self, schema, file_format, output_path):  # type: ignore[override]
        # TFX applies `self._EncodeAndWrite(schema=..., file_format=..., output_path=...)` to the
        # transformed batches: what it is given is a PTransform, however made. TFX's own is
        # reached through super(), not through the module's name, which `processor` points here.
        if file_format != transform_executor.labels.FORMAT_TFRECORD:
            return super()._EncodeAndWrite(  # pylint: disable=no-value-for-parameter
                schema=schema, file_format=file_format, output_path=output_path)
        return self.write_tfrecords(schema, output_path)


@contextlib.contextmanager
def processor(processor_class: Type[TransformProcessor]) -> Iterator[None]:
    """While it lasts, TFX's Transform executor runs its pipeline with `processor_class`. An
    executor holds it around its `Do`: components run one at a time in a process (LocalDagRunner,
    a container per component)."""
    with patched(transform_executor, 'TransformProcessor', processor_class):
        yield
