"""CsvExampleGen's executor for our pipeline: columns typed by the curated schema, bad rows named.

TFX's CsvExampleGen infers each column's type from the data and fails deep inside Beam on a
malformed row. This executor of TFX's FileBasedExampleGen instead
- types each column as the schema does (INT, FLOAT, else BYTES: a column the schema lacks is kept,
  so that ExampleValidator reports it), an empty field being a missing value;
- checks every row: its number of fields, its numbers, and no line break inside a quoted value
  (TFT writes vocabularies as files of lines, so a category cannot hold one);
- writes each bad row, with its file, line and problem, to one CSV, and then, by `bad_rows`, fails
  naming them ('fail') or goes on without them ('skip'). The Examples artifact's `bad_rows` and
  `bad_rows_dir` properties say how many and where;
- draws the splits that have no files of their own (validation, eval) from the train files by
  hash, as TFX's output split config would if there were only one input split.
"""

import bisect
import csv
import hashlib
import io
import os
import re
from typing import Any, Dict, Iterable, List

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio
from google.protobuf import json_format, struct_pb2, text_format
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

# The splits every run has: the Trainer learns from train and picks its weights on validation; the
# Evaluators and the gate judge on eval alone.
TRAIN, VALIDATION, EVAL = SPLITS = ('train', 'validation', 'eval')
BAD_ROWS_DIR = 'BadRows'
BAD_ROWS_PROPERTY = 'bad_rows'
BAD_ROWS_DIR_PROPERTY = 'bad_rows_dir'
BAD_ROWS_HEADER = 'file,line,problem,row'
# How many bad rows the error message quotes; all of them are in BadRows/.
QUOTED_BAD_ROWS = 10
_BAD = 'bad'
_BAD_ROWS_DIR_KEY = '_bad_rows_dir'


class CsvRowsError(ValueError):
    """Rows of the input CSVs that cannot become examples; the message names file and line."""


def custom_config(schema_file: str, bad_rows: str, split_off_train: Dict[str, int] = None
                  ) -> example_gen_pb2.CustomConfig:
    """The executor's settings, as FileBasedExampleGen carries them. `split_off_train`: {split:
    hash buckets}, train first, when the train files are to be split (e.g. into train and
    validation)."""
    settings = struct_pb2.Struct()
    settings.update({'schema_file': schema_file, 'bad_rows': bad_rows,
                     'split_off_train': [[name, buckets]
                                         for name, buckets in (split_off_train or {}).items()]})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(settings)
    return config


def _settings(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY], config)
    settings = struct_pb2.Struct()
    config.custom_config.Unpack(settings)
    return json_format.MessageToDict(settings)


def column_types(schema_file: str) -> Dict[str, str]:
    """{feature: 'INT' | 'FLOAT' | 'BYTES'} as the schema types them."""
    schema = schema_pb2.Schema()
    with fileio.open(schema_file, 'r') as f:
        text_format.Parse(f.read(), schema)
    return {feature.name: schema_pb2.FeatureType.Name(feature.type) for feature in schema.feature}


_PARSERS = {'INT': int, 'FLOAT': float}


def _values(feature: feature_pb2.Feature, parse):
    """The feature's value list of the kind `parse` produces."""
    return {int: feature.int64_list, float: feature.float_list}.get(parse, feature.bytes_list).value


class _RowEncoder:
    """Serializes the rows of one file as tf.Examples. It refills one message in place, several
    times faster than building a message per row; rows with missing values get their own.

    Serialization is deterministic (features in name order): the train/eval split hashes these
    bytes, and protobuf otherwise writes a map in an order that changes from process to process,
    so the same row would land in another split on another run, runner or worker."""

    def __init__(self, header: List[str], types: Dict[str, str]):
        self._header = header
        self._parsers = [_PARSERS.get(types.get(name), str.encode) for name in header]
        self._template = example_pb2.Example()
        self._slots = []
        for name, parse in zip(header, self._parsers):
            values = _values(self._template.features.feature[name], parse)
            values.append(parse('0'))
            self._slots.append(values)

    def encode(self, fields: List[str]) -> bytes:
        """The serialized example, or ValueError saying what is wrong with the row."""
        if len(fields) != len(self._header):
            raise ValueError(f'{len(fields)} fields where the header has {len(self._header)}')
        parsed = []
        for name, parse, text in zip(self._header, self._parsers, fields):
            if '\n' in text or '\r' in text:
                raise ValueError(f'column {name!r} holds a line break')
            if not text:
                parsed.append(None)
                continue
            try:
                parsed.append(parse(text))
            except ValueError:
                raise ValueError(f'column {name!r}: {text!r} is not '
                                 f'{"an integer" if parse is int else "a number"}') from None
        if None not in parsed:
            for values, value in zip(self._slots, parsed):
                values[0] = value
            return self._template.SerializeToString(deterministic=True)
        example = example_pb2.Example()
        for name, parse, value in zip(self._header, self._parsers, parsed):
            if value is not None:
                _values(example.features.feature[name], parse).append(value)
        return example.SerializeToString(deterministic=True)


def _csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    # With a line terminator, the writer quotes values that hold line breaks.
    csv.writer(out, lineterminator='\n').writerow(values)
    return out.getvalue()[:-1]


class _ParseCsvFile(beam.DoFn):
    """A CSV file (header first) -> serialized tf.Examples; bad rows go to the 'bad' output as
    lines of BadRows/ (file, line, problem, the row as read)."""

    def __init__(self, types: Dict[str, str]):
        self._types = types

    def process(self, readable: beam_fileio.ReadableFile):
        path = readable.metadata.path
        text = io.TextIOWrapper(readable.open(), encoding='utf-8', newline='')
        reader = csv.reader(text)
        line = 1
        try:
            header = next(reader, None)
            repeated = sorted({name for name in header if header.count(name) > 1})
            if not header or repeated:
                problem = f'the header repeats {repeated}' if repeated else 'no header line'
                yield beam.pvalue.TaggedOutput(_BAD, _csv_line([path, 1, problem, '']))
                return
            encoder = _RowEncoder(header, self._types)
            line = reader.line_num + 1
            for fields in reader:
                if fields:  # blank lines are skipped
                    try:
                        yield encoder.encode(fields)
                    except ValueError as problem:
                        yield beam.pvalue.TaggedOutput(
                            _BAD, _csv_line([path, line, problem, _csv_line(fields)]))
                line = reader.line_num + 1
        except UnicodeDecodeError as error:
            yield beam.pvalue.TaggedOutput(_BAD, _csv_line(
                [path, line, f'not UTF-8 text from here on ({error.reason}); rest of file unread',
                 '']))


@beam.ptransform_fn
def _CsvToExamples(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                   split_pattern: str) -> beam.PCollection:
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    pattern = os.path.join(input_base, split_pattern)
    if not fileio.glob(pattern):
        raise CsvRowsError(f'no file matches {pattern}')
    settings = _settings(exec_properties)
    parsed = (pipeline
              | 'Match' >> beam_fileio.MatchFiles(pattern)
              | 'Read' >> beam_fileio.ReadMatches()
              | 'Parse' >> beam.ParDo(_ParseCsvFile(column_types(settings['schema_file'])))
              .with_outputs(_BAD, main='examples'))
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', split_pattern)
    _ = parsed[_BAD] | 'WriteBadRows' >> beam.io.WriteToText(
        os.path.join(exec_properties[_BAD_ROWS_DIR_KEY], name), file_name_suffix='.csv',
        shard_name_template='', header=BAD_ROWS_HEADER)
    return parsed.examples | 'Reshuffle' >> beam.Reshuffle()


def bad_rows_dir(examples_uri: str) -> str:
    """<pipeline root>/<ExampleGen>/BadRows/<execution>: beside the artifact, not inside it,
    because TFX removes the outputs of a failed execution."""
    component_dir = os.path.dirname(os.path.dirname(examples_uri))
    return os.path.join(component_dir, BAD_ROWS_DIR, os.path.basename(examples_uri))


def read_bad_rows(directory: str) -> List[Dict[str, str]]:
    """The bad rows an execution wrote: [{'file', 'line', 'problem', 'row'}], in file order."""
    rows = []
    for path in sorted(fileio.glob(os.path.join(directory, '*.csv'))):
        with fileio.open(path, 'r') as f:
            rows.extend(csv.DictReader(io.StringIO(f.read())))
    return rows


def _describe(bad: List[Dict[str, str]], where: str) -> str:
    quoted = [f"{row['file']}:{row['line']}: {row['problem']}" for row in bad[:QUOTED_BAD_ROWS]]
    more = (f'\n  ... and {len(bad) - QUOTED_BAD_ROWS} more' if len(bad) > QUOTED_BAD_ROWS
            else '')
    return (f'{len(bad)} bad CSV row(s):\n  ' + '\n  '.join(quoted) + more
            + f'\n(all of them: {where}; set bad_rows: skip to train without them)')


def _bucket(example: bytes, num_partitions: int, bounds: List[int]) -> int:
    """The split of an example: its hash among the buckets, as TFX's ExampleGen splits."""
    del num_partitions  # len(bounds)
    return bisect.bisect(bounds, int(hashlib.sha256(example).hexdigest(), 16) % bounds[-1])


class Executor(BaseExampleGenExecutor):

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToExamples

    def GenerateExamplesByBeam(self, pipeline, exec_properties):
        splits = super().GenerateExamplesByBeam(pipeline, exec_properties)
        split_off = _settings(exec_properties).get('split_off_train')
        if split_off:
            bounds = [sum(int(buckets) for _, buckets in split_off[:i + 1])
                      for i in range(len(split_off))]
            parts = splits.pop(TRAIN) | 'SplitTrainFiles' >> beam.Partition(
                _bucket, len(bounds), bounds)
            splits.update(zip([name for name, _ in split_off], parts))
            # TFX named the artifact's splits after the input splits; the writing of each split
            # (after this returns) needs them all.
            self._examples.split_names = artifact_utils.encode_split_names(
                [name for name in SPLITS if name in splits] + sorted(set(splits) - set(SPLITS)))
        return splits

    def Do(self, input_dict, output_dict, exec_properties):
        examples = self._examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        directory = bad_rows_dir(examples.uri)
        super().Do(input_dict, output_dict, {**exec_properties, _BAD_ROWS_DIR_KEY: directory})
        bad = read_bad_rows(directory)
        examples.set_int_custom_property(BAD_ROWS_PROPERTY, len(bad))
        examples.set_string_custom_property(BAD_ROWS_DIR_PROPERTY, directory)
        if bad and _settings(exec_properties)['bad_rows'] == 'fail':
            raise CsvRowsError(_describe(bad, directory))
