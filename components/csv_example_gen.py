"""CsvExampleGen's executor for our pipeline: columns typed by the curated schema, bad rows named.

TFX's CsvExampleGen infers each column's type from the data and fails deep inside Beam on a
malformed row. This executor of TFX's FileBasedExampleGen instead
- types each column as the schema does (INT, FLOAT, else BYTES: a column the schema lacks is kept,
  so that ExampleValidator reports it), an empty field being a missing value;
- accounts for every row: the rows kept and the rows set aside are together the data rows of the
  files, whatever bytes the files hold (`read_csv`). A row is a line, read by the rules of
  `components/csv_lines.py`; a file's first non-blank line is its header, and its data rows are
  the non-blank lines after it (a blank line, nothing between two line breaks, is no row). A
  line is a bad row when `csv_lines` refuses it, has another number of fields than the header, or
  holds a value its column's type refuses. A file without a header (0 bytes, or blank lines
  only) contributes nothing; one whose header cannot be read or repeats a name fails the run
  (CsvRowsError, under either `bad_rows` policy): none of its rows could be read;
- writes each bad row, with its file, line and problem, to one CSV, and then, by `bad_rows`, fails
  naming them ('fail') or goes on without them ('skip'). The Examples artifact's `bad_rows` and
  `bad_rows_dir` properties say how many and where;
- refuses a file that the patterns of two input splits match (e.g. `*.csv` and `week9.csv`):
  its rows would be in both splits, eval rows trained on;
- draws the splits that have no files of their own (validation, eval) from the train files by
  hash, as TFX's output split config would if there were only one input split;
- reads, serializes, splits and writes the rows in batches, with a serializer of its own that
  writes protobuf's bytes (components/example_encoder.py): Beam's cost per element and
  protobuf's per message were most of the time of one example at a time.
"""

import bisect
import csv
import hashlib
import io
import itertools
import operator
import os
import re
from typing import Any, BinaryIO, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio
from apache_beam.options.pipeline_options import StandardOptions
from google.protobuf import json_format, struct_pb2, text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from compat import beam_tfrecord
from components import csv_lines
from components.example_encoder import RowEncoder as _RowEncoder

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
# Rows parsed, serialized, split and written together: Beam's cost per element is paid per batch.
BATCH_ROWS = 4096


class CsvRowsError(ValueError):
    """Rows of the input CSVs that cannot become examples; the message names file and line."""


def custom_config(schema_file: str, bad_rows: str,
                  split_off_train: Optional[Dict[str, int]] = None,
                  separators: Optional[Dict[str, str]] = None) -> example_gen_pb2.CustomConfig:
    """The executor's settings, as FileBasedExampleGen carries them. `split_off_train`: {split:
    hash buckets}, train first, when the train files are to be split (e.g. into train and
    validation). `separators`: {column: separator} of the list columns, whose cells hold several
    values."""
    settings = struct_pb2.Struct()
    settings.update({'schema_file': schema_file, 'bad_rows': bad_rows,
                     'separators': dict(separators or {}),
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


def _csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    # The writer quotes a value that holds a comma or a quote.
    csv.writer(out, lineterminator='\n').writerow(values)
    return out.getvalue()[:-1]


class BadRow(NamedTuple):
    """A row set aside, as BadRows/ lists it: its file, its line (the file's first line is 1), what
    is wrong with it, and the row as read: its line (bytes that are not UTF-8 text, and NULs, as
    \\xNN; of a line over csv_lines.MAX_LINE_BYTES, its first MAX_LINE_BYTES bytes), or, of a row
    whose fields were read, its fields written as CSV."""
    file: str
    line: int
    problem: str
    row: str


def _as_read(line: bytes) -> str:
    """A line as BadRows/ quotes it: as text, its bytes that are not UTF-8 text and NULs as \\xNN
    (a NUL would end the row for csv's reader)."""
    return line[:csv_lines.MAX_LINE_BYTES].decode('utf-8', 'backslashreplace').replace(
        '\0', '\\x00')


def read_csv(stream: BinaryIO, path: str, types: Dict[str, str],
             separators: Optional[Dict[str, str]] = None
             ) -> Iterator[Union[List[bytes], BadRow]]:
    """The rows of one CSV file (`stream`, binary; `path`, its name in messages), in order: batches
    (lists) of serialized tf.Examples of the good ones, typed by `types` ({column: 'INT' | 'FLOAT'
    | 'BYTES'}, as column_types gives), a column of `separators` ({column: separator}) holding its
    values with the separator between them, and a BadRow for each bad one, each batch's bad rows after
    it in line order. The rows of both are the file's data rows (the module docstring says which
    lines those are). CsvRowsError if the header cannot be read or repeats a name."""
    lines = itertools.chain.from_iterable(csv_lines.physical_lines(stream))
    number = 0  # the line number of the last line read
    for line in lines:
        number += 1
        if line:
            break
    else:
        return  # no header, no rows: a file of 0 bytes or of blank lines
    try:
        header = csv_lines.fields(line)
    except ValueError as problem:
        raise CsvRowsError(f'{path}:{number}: the header: {problem}; '
                           'no row of the file can be read') from None
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CsvRowsError(f'{path}:{number}: the header repeats {repeated}; '
                           'no row of the file can be read')
    encoder = _RowEncoder(header, types, separators or {})
    rows, numbers, bad = [], [], []  # the rows not yet encoded, their lines; the bad lines
    for line in lines:
        number += 1
        if not line:
            continue
        try:
            rows.append(csv_lines.fields(line))
        except ValueError as problem:
            bad.append(BadRow(path, number, str(problem), _as_read(line)))
        else:
            numbers.append(number)
        if len(rows) + len(bad) >= BATCH_ROWS:
            yield from _encode(encoder, path, rows, numbers, bad)
            rows, numbers, bad = [], [], []
    if rows or bad:
        yield from _encode(encoder, path, rows, numbers, bad)


def _encode(encoder: _RowEncoder, path: str, rows: List[List[str]], numbers: List[int],
            bad: List[BadRow]) -> Iterator[Union[List[bytes], BadRow]]:
    """The examples of `rows` (from lines `numbers`), then their bad rows and `bad`, by line."""
    examples, problems = encoder.encode(rows)
    if examples:
        yield examples
    bad.extend(BadRow(path, numbers[index], problem, _csv_line(rows[index]))
               for index, problem in problems.items())
    yield from sorted(bad, key=operator.attrgetter('line'))


class _ParseCsvFile(beam.DoFn):
    """A CSV file -> batches (lists) of serialized tf.Examples (read_csv); bad rows go to the
    'bad' output as lines of BadRows/."""

    def __init__(self, types: Dict[str, str], separators: Dict[str, str]):
        self._types = types
        self._separators = separators

    def process(self, readable: beam_fileio.ReadableFile):
        path = readable.metadata.path
        with readable.open(mime_type='application/octet-stream') as stream:
            for output in read_csv(stream, path, self._types, self._separators):
                yield (beam.pvalue.TaggedOutput(_BAD, _csv_line(output))
                       if isinstance(output, BadRow) else output)


@beam.ptransform_fn
def _CsvToExamples(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                   split_pattern: str) -> beam.PCollection:
    """The files of `split_pattern` -> batches of serialized tf.Examples."""
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    pattern = os.path.join(input_base, split_pattern)
    if not fileio.glob(pattern):
        raise CsvRowsError(f'no file matches {pattern}')
    settings = _settings(exec_properties)
    parsed = (pipeline
              | 'Match' >> beam_fileio.MatchFiles(pattern)
              | 'Read' >> beam_fileio.ReadMatches()
              | 'Parse' >> beam.ParDo(_ParseCsvFile(column_types(settings['schema_file']),
                                                    settings.get('separators', {})))
              .with_outputs(_BAD, main='examples'))
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', split_pattern)
    _ = parsed[_BAD] | 'WriteBadRows' >> beam.io.WriteToText(
        os.path.join(exec_properties[_BAD_ROWS_DIR_KEY], name), file_name_suffix='.csv',
        shard_name_template='', header=BAD_ROWS_HEADER)
    return parsed.examples


class _SplitBatches(beam.DoFn):
    """Batches of serialized examples -> batches of each split (an output each), an example's
    split being its sha256 among the splits' hash buckets, as TFX's ExampleGen splits: the same
    example lands in the same split on any run, runner or worker."""

    def __init__(self, shares: List[Tuple[str, int]]):
        self._names = [name for name, _ in shares]
        self._bounds = list(itertools.accumulate(int(buckets) for _, buckets in shares))

    def process(self, batch: List[bytes]):
        if len(self._names) == 1:
            yield beam.pvalue.TaggedOutput(self._names[0], batch)
            return
        parts: List[List[bytes]] = [[] for _ in self._names]
        for example in batch:
            digest = int.from_bytes(hashlib.sha256(example).digest(), 'big')
            parts[bisect.bisect(self._bounds, digest % self._bounds[-1])].append(example)
        for name, part in zip(self._names, parts):
            if part:
                yield beam.pvalue.TaggedOutput(name, part)


def bad_rows_dir(examples_uri: str) -> str:
    """<pipeline root>/<ExampleGen>/BadRows/<execution>: beside the artifact, not inside it,
    because TFX removes the outputs of a failed execution."""
    component_dir = os.path.dirname(os.path.dirname(examples_uri))
    return os.path.join(component_dir, BAD_ROWS_DIR, os.path.basename(examples_uri))


def read_bad_rows(directory: str) -> List[Dict[str, str]]:
    """The bad rows an execution wrote: [{'file', 'line', 'problem', 'row'}], in file order."""
    rows: List[Dict[str, str]] = []
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


def _check_one_split_per_file(input_base: str, splits: Iterable[example_gen_pb2.Input.Split]):
    """CsvRowsError if the patterns of two input splits match the same file: its rows would be in
    both splits (eval rows trained on, e.g., with `*.csv` for train and `week9.csv` for eval)."""
    owners: Dict[str, example_gen_pb2.Input.Split] = {}
    for split in splits:
        for path in fileio.glob(os.path.join(input_base, split.pattern)):
            first = owners.setdefault(path, split)
            if first.name != split.name:
                raise CsvRowsError(
                    f'{path} is matched by the patterns of two splits, {first.name} '
                    f'({first.pattern!r}) and {split.name} ({split.pattern!r}): its rows would be '
                    'in both; give each split patterns that no other split\'s match')


# What `--runner` names Beam's DirectRunner (and no `--runner`, its default).
_DIRECT_RUNNERS = (None, 'DirectRunner', 'direct', 'SwitchingDirectRunner',
                   'BundleBasedDirectRunner')


class Executor(BaseExampleGenExecutor):
    """TFX's FileBasedExampleGen executor for our CSVs (see the module's docstring)."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        """The PTransform from a split's file pattern to batches of serialized tf.Examples."""
        # A ptransform_fn, as TFX's own executors return, whatever TFX's annotation says.
        return _CsvToExamples  # type: ignore[return-value]

    def GenerateExamplesByBeam(self, pipeline, exec_properties):
        """Reads, splits and writes the examples in batches, and returns no PCollection: TFX's
        Do writes those it gets one example at a time, reshuffling each, which cost more than
        reading and parsing them."""
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
                                  input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY],
                                  output_config)
        if output_config.split_config.partition_feature_name:
            raise ValueError('CsvExampleGen splits by hash of the whole example; '
                             'partition_feature_name is not supported')
        _check_one_split_per_file(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                                  input_config.splits)
        split_off = _settings(exec_properties).get('split_off_train')
        if output_config.split_config.splits:  # one input split (TFX checks), shared by hash
            shares = {input_config.splits[0].name: [
                (split.name, split.hash_buckets) for split in output_config.split_config.splits]}
        else:
            shares = {split.name: ([tuple(share) for share in split_off]
                                   if split.name == TRAIN and split_off else [(split.name, 1)])
                      for split in input_config.splits}
        names = [name for split in input_config.splits for name, _ in shares[split.name]]
        self._examples.split_names = artifact_utils.encode_split_names(
            [name for name in SPLITS if name in names] + sorted(set(names) - set(SPLITS)))
        # Beam's DirectRunner holds a reshuffle's whole input in memory: every encoded example
        # (8.6 GB at 5M rows; without it the whole 5M-row run peaks at 2.4 GB).
        local = pipeline.options.view_as(StandardOptions).runner in _DIRECT_RUNNERS
        for split in input_config.splits:
            parts = (pipeline
                     | f'InputToRecord[{split.name}]' >> _CsvToExamples(  # pylint: disable=no-value-for-parameter
                         exec_properties, split.pattern)
                     | f'Split[{split.name}]' >> beam.ParDo(_SplitBatches(shares[split.name]))
                     .with_outputs(*(name for name, _ in shares[split.name])))
            for name, _ in shares[split.name]:
                batches = parts[name]
                if not local:
                    # Spreads the writing over a remote runner's workers.
                    batches = batches | f'Shuffle[{name}]' >> beam.Reshuffle()
                _ = batches | f'WriteSplit[{name}]' >> beam.io.Write(
                    beam_tfrecord.BatchTFRecordSink(os.path.join(
                        artifact_utils.get_split_uri([self._examples], name),
                        write_split.DEFAULT_FILE_NAME)))
        return {}

    def Do(self, input_dict, output_dict, exec_properties):
        """TFX's Do, with the bad rows written beside the Examples artifact and counted in its
        properties; CsvRowsError naming them under `bad_rows: fail`."""
        examples = self._examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        directory = bad_rows_dir(examples.uri)
        super().Do(input_dict, output_dict, {**exec_properties, _BAD_ROWS_DIR_KEY: directory})
        # On Kubeflow the span comes as a parameter (from TFX's check before the cache on Vertex
        # AI, from its task of its own on open-source Kubeflow Pipelines); the examples record
        # it, as TFX's local driver has them record it.
        span = exec_properties.get(example_gen_utils.SPAN_PROPERTY_NAME)
        if span is not None and not examples.has_custom_property(
                example_gen_utils.SPAN_PROPERTY_NAME):
            examples.set_int_custom_property(example_gen_utils.SPAN_PROPERTY_NAME, int(span))
        bad = read_bad_rows(directory)
        examples.set_int_custom_property(BAD_ROWS_PROPERTY, len(bad))
        examples.set_string_custom_property(BAD_ROWS_DIR_PROPERTY, directory)
        if bad and _settings(exec_properties)['bad_rows'] == 'fail':
            raise CsvRowsError(_describe(bad, directory))
