"""Our StatisticsGen executor, run for real beside TFX's own on the same small Examples: it reads
and decodes them differently (components/statistics_gen.py) and must write the same statistics
to the same places."""

import csv
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.components.statistics_gen import executor as tfx_executor
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, channel, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import io_utils
from tfx_bsl.coders import example_coder

from compat import tfx_statistics_gen
from components import statistics_gen
from components.example_encoder import RowEncoder
from local_runner import LOCAL_BEAM_ARGS
from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.datasets import clicklog

SCHEMA = io_utils.parse_pbtxt_file(PipelineConfig().schema, schema_pb2.Schema())
ECOMMERCE_TYPES = {feature.name: schema_pb2.FeatureType.Name(feature.type)
                   for feature in SCHEMA.feature}
# What CsvExampleGen writes a click log's histories with (the config's sequence features).
CLICKLOG_SEPARATORS = {name: clicklog.SEPARATOR for name in clicklog.SEQUENCE_COLUMNS}
SPAN = 3
# Records per batch our executor reads in the e-commerce run: several batches per split.
SMALL_BATCH = 64


def _examples(directory, header, split_rows, types, separators=None):
    """An Examples artifact of span SPAN: {split: rows (lists of CSV fields)} as CsvExampleGen
    writes them (its encoder, gzipped TFRecords, a file per split)."""
    artifact = standard_artifacts.Examples()
    artifact.uri = str(directory)
    artifact.split_names = artifact_utils.encode_split_names(list(split_rows))
    artifact.span = SPAN
    encoder = RowEncoder(header, types, separators or {})
    for split, rows in split_rows.items():
        records, problems = encoder.encode(rows)
        assert not problems and len(records) == len(rows)
        os.makedirs(directory / f'Split-{split}')
        path = directory / f'Split-{split}' / 'data_tfrecord-00000-of-00001.gz'
        with tf.io.TFRecordWriter(str(path), options='GZIP') as writer:
            for record in records:
                writer.write(record)
    return artifact


@pytest.fixture(scope='module')
def ecommerce_examples(tmp_path_factory):
    """The bundled data's first rows: train 300 without a missing value, validation and eval 100
    each with a value missing (an empty field) in every seventh row, validation's first row
    among them."""
    with open(os.path.join(PROJECT_DIR, 'data', 'ecommerce', 'ecommerce.csv')) as f:
        header, *rows = list(csv.reader(f))[:501]
    for i, row in enumerate(rows[300:]):
        if i % 7 == 0:
            row[i % len(row)] = ''
    return _examples(tmp_path_factory.mktemp('ecommerce'), header,
                     {'train': rows[:300], 'validation': rows[300:400], 'eval': rows[400:]},
                     ECOMMERCE_TYPES)


@pytest.fixture(scope='module')
def clicklog_examples(tmp_path_factory):
    """A generated click log, its histories lists of 0 to 50 ids: train and validation without an
    empty history, eval with some (an empty history is a missing feature)."""
    frame, _ = clicklog.generate(600, seed=3)
    text = io.StringIO()
    frame.to_csv(text, index=False)
    header, *rows = list(csv.reader(io.StringIO(text.getvalue())))
    types = {name: 'INT' if dtype.kind == 'i' else 'FLOAT' if dtype.kind == 'f' else 'BYTES'
             for name, dtype in frame.dtypes.items()}
    history = header.index('hist_categories')
    full = [row for row in rows if row[history]]
    empty = [row for row in rows if not row[history]]
    assert len(full) > 500 and empty
    return _examples(tmp_path_factory.mktemp('clicklog'), header,
                     {'train': full[:400], 'validation': full[400:450],
                      'eval': full[450:500] + empty}, types, CLICKLOG_SEPARATORS)


def _run(executor_class, examples, output, exclude_splits=()):
    """The statistics artifact `executor_class` writes under `output` for `examples`, as
    pipeline.create_pipeline() configures the component (TFX's defaults) and the local runner
    runs it."""
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(output / 'statistics')
    executor_class(executor_class.Context(beam_pipeline_args=list(LOCAL_BEAM_ARGS),
                                          tmp_dir=str(output / 'tmp'), unique_id='1')).Do(
        {keys.EXAMPLES_KEY: [examples]}, {keys.STATISTICS_KEY: [statistics]},
        {keys.EXCLUDE_SPLITS_KEY: json.dumps(list(exclude_splits))})
    return statistics


@pytest.fixture(scope='module')
def ecommerce_runs(ecommerce_examples, tmp_path_factory):
    """(ours, TFX's) statistics of the e-commerce examples, ours reading SMALL_BATCH records a
    batch with a sample of one record: validation's first batch, whose first record lacks a
    feature, is decoded by tfx_bsl, the others parsed."""
    output = tmp_path_factory.mktemp('ecommerce_runs')
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(statistics_gen, 'BATCH_RECORDS', SMALL_BATCH)
        patch.setattr(statistics_gen, 'SAMPLE_RECORDS', 1)
        ours = _run(statistics_gen.Executor, ecommerce_examples, output / 'ours')
    return ours, _run(tfx_executor.Executor, ecommerce_examples, output / 'theirs')


@pytest.fixture(scope='module')
def clicklog_runs(clicklog_examples, tmp_path_factory):
    """(ours, TFX's) statistics of the click log, its validation split excluded."""
    output = tmp_path_factory.mktemp('clicklog_runs')
    return tuple(_run(executor, clicklog_examples, output / name, exclude_splits=['validation'])
                 for name, executor in (('ours', statistics_gen.Executor),
                                        ('theirs', tfx_executor.Executor)))


def _split_statistics(artifact):
    """{split: its DatasetFeatureStatistics}, read from where ExampleValidator and AnomalyCheck
    read them."""
    return {split: tfdv.load_stats_binary(os.path.join(
                artifact.uri, f'Split-{split}', 'FeatureStats.pb')).datasets[0]
            for split in artifact_utils.decode_split_names(artifact.split_names)}


def _features(dataset):
    """{feature path: its statistics} of `dataset`."""
    return {tuple(feature.path.step): feature for feature in dataset.features}


def _without_mean(feature):
    """A feature's statistics without its mean and standard deviation (compared apart);
    everything else TFDV computes stays: counts, missing counts, values per row and their
    histogram, minimum and maximum, zeros, median, histograms and quantiles, unique count, top
    values, rank histogram, average length."""
    copy = statistics_pb2.FeatureNameStatistics()
    copy.CopyFrom(feature)
    if copy.HasField('num_stats'):
        copy.num_stats.ClearField('mean')
        copy.num_stats.ClearField('std_dev')
    return copy


def _assert_same_statistics(ours, theirs):
    ours_splits, their_splits = _split_statistics(ours), _split_statistics(theirs)
    assert list(ours_splits) == list(their_splits)
    for split, theirs_ in their_splits.items():
        ours_ = ours_splits[split]
        assert ours_.num_examples == theirs_.num_examples > 0
        rest = [statistics_pb2.DatasetFeatureStatistics(), statistics_pb2.DatasetFeatureStatistics()]
        for copy, dataset in zip(rest, (ours_, theirs_)):
            copy.CopyFrom(dataset)
            copy.ClearField('features')
        assert rest[0] == rest[1], split
        # The same features; listed in the order TFDV first met them in a batch, which depends on
        # the batches where a batch lacks a feature (the first ones TFX reads hold one record).
        ours_features, their_features = _features(ours_), _features(theirs_)
        assert sorted(ours_features) == sorted(their_features)
        for path, b in their_features.items():
            a = ours_features[path]
            # TFDV's means and variances are sums of floats, and ours adds the same values in
            # other batches: they may differ in their last bits (TFX's own differ so from run to
            # run, its Beam combine spreading batches over randomly chosen keys).
            if b.HasField('num_stats'):
                np.testing.assert_allclose(
                    [a.num_stats.mean, a.num_stats.std_dev],
                    [b.num_stats.mean, b.num_stats.std_dev], rtol=1e-12, atol=0,
                    err_msg=f'{split} {path}')
            # Everything else is the same. The quantiles and the histograms too: TFDV's quantiles
            # sketch (epsilon 0.01) holds these few values exactly, whatever the batches; at 1M
            # rows bench/statistics_gen.py compares them.
            assert _without_mean(a) == _without_mean(b), (split, path)


@pytest.mark.beam
def test_the_same_statistics_as_tfx_own_executor(ecommerce_runs):
    _assert_same_statistics(*ecommerce_runs)
    train = _features(_split_statistics(ecommerce_runs[0])['train'])
    assert train[('user_id',)].string_stats.top_values and train[('price',)].num_stats.histograms


@pytest.mark.beam
def test_the_same_statistics_of_list_features_and_missing_ones(clicklog_runs):
    """A history is a list of 1 to 50 values; TFDV counts values per row, and rows without one."""
    _assert_same_statistics(*clicklog_runs)
    splits = _split_statistics(clicklog_runs[0])
    history = {split: _features(dataset)[('hist_categories',)]
               for split, dataset in splits.items()}
    common = history['train'].string_stats.common_stats
    assert common.min_num_values >= 1 and common.max_num_values > 1
    assert common.num_missing == 0 and history['eval'].string_stats.common_stats.num_missing > 0


@pytest.mark.beam
def test_the_artifact_has_tfx_own_splits_span_and_properties(ecommerce_runs, clicklog_runs):
    for ours, theirs in (ecommerce_runs, clicklog_runs):
        assert ours.split_names == theirs.split_names
        assert ours.span == theirs.span == SPAN
        assert ours.mlmd_artifact.custom_properties == theirs.mlmd_artifact.custom_properties
        assert sorted(os.listdir(ours.uri)) == sorted(os.listdir(theirs.uri))
    assert artifact_utils.decode_split_names(clicklog_runs[0].split_names) == ['train', 'eval']
    assert not os.path.exists(os.path.join(clicklog_runs[0].uri, 'Split-validation'))


def _example(**features):
    example = tf.train.Example()
    for name, values in features.items():
        feature = example.features.feature[name]
        if isinstance(values[0], int):
            feature.int64_list.value.extend(values)
        elif isinstance(values[0], float):
            feature.float_list.value.extend(values)
        else:
            feature.bytes_list.value.extend(values)
    return example.SerializeToString()


GOOD = _example(a=[b'x'], z=[1], f=[0.5])
EMPTY_LIST = tf.train.Example(features=tf.train.Features(feature={
    'f': tf.train.Feature(float_list=tf.train.FloatList())})).SerializeToString()
# Batches that parsing gives tfx_bsl's RecordBatch of, the sample (the first records) holding
# every feature of the batch.
PARSED = {
    'features in another order on the wire, lists': [
        GOOD, _example(f=[2.5], z=[3, 4, 5], a=[b'u', b'v'])],
    # Protobuf merges the two; TensorFlow's decode_proto alone would keep the last.
    'a second features field': [GOOD, _example(z=[6]) + _example(f=[3.5], a=[b''])],
    'a feature missing (null)': [GOOD, _example(a=[b'y'], z=[2]), _example(f=[1.0])],
    'a record without features': [GOOD, b''],
    'a feature the first record lacks': [_example(a=[b'y']), GOOD],
}
# Batches, with a sample of their first record alone, that parsing could read otherwise than
# tfx_bsl does (or refuses): each leads to tfx_bsl's RecordBatch or error.
FALLBACKS = {
    'a feature after the sample': [GOOD, _example(a=[b'y'], z=[2], f=[1.5], extra=[3])],
    'a feature after the sample, in a second features field': [
        GOOD, _example(extra=[3]) + _example(a=[b'y'], z=[2], f=[1.5])],
    'a feature twice': [GOOD, _example(a=[b'y'], f=[1.5]) + _example(a=[b'w'], z=[2])],
    'an empty list': [GOOD, _example(a=[b'y'], z=[2]) + EMPTY_LIST],
    'no features in the sample': [b'', GOOD],
    'another kind of value (an error)': [GOOD, _example(a=[b'y'], z=[2.0], f=[1.5])],
    'a broken record (an error)': [GOOD, b'\x0a\x05abc'],
    'a broken record in the sample (an error)': [b'\x0a\x05abc', GOOD],
}


def _records(examples, split):
    return [record.numpy() for record in tf.data.TFRecordDataset(
        os.path.join(examples.uri, f'Split-{split}', 'data_tfrecord-00000-of-00001.gz'), 'GZIP')]


def _outcome(decode, batch):
    """What `decode(batch)` gives: ('batch', the RecordBatch as a dict, its schema) or
    ('error', the exception's type and message)."""
    try:
        decoded = decode(batch)
    except Exception as error:  # pylint: disable=broad-except
        return 'error', type(error), str(error)
    return 'batch', decoded.to_pydict(), decoded.schema


@pytest.mark.beam
def test_the_decoder_parses_what_gives_tfx_bsls_record_batch(ecommerce_examples,
                                                             clicklog_examples):
    """CsvExampleGen's examples (those of the runs above: missing values, lists, missing lists)
    and the PARSED batches."""
    batches = {f'{name} {split}': _records(examples, split)
               for name, examples in (('ecommerce', ecommerce_examples),
                                      ('clicklog', clicklog_examples))
               for split in artifact_utils.decode_split_names(examples.split_names)}
    for name, batch in {**batches, **PARSED}.items():
        parsed = statistics_gen.SchemalessDecoder()._parsed(batch)  # pylint: disable=protected-access
        assert parsed is not None, name
        expected = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(batch)
        assert parsed.equals(expected) and parsed.schema == expected.schema, name
    assert parsed.schema.names == ['a', 'f', 'z']


@pytest.mark.parametrize('case', list(FALLBACKS))
def test_the_decoder_leaves_to_tfx_bsl_what_parsing_could_read_otherwise(case, monkeypatch):
    monkeypatch.setattr(statistics_gen, 'SAMPLE_RECORDS', 1)
    decoder = statistics_gen.SchemalessDecoder()
    batch = FALLBACKS[case]
    assert decoder._parsed(batch) is None  # pylint: disable=protected-access
    assert _outcome(decoder.decode, batch) == _outcome(
        example_coder.ExamplesToRecordBatchDecoder().DecodeBatch, batch)


def test_the_patch_is_undone_after_the_context_on_an_exception_too():
    original = tfxio_utils.get_split_tfxio
    with pytest.raises(RuntimeError):
        with tfx_statistics_gen.split_tfxio_wrapped(lambda source: source):
            assert tfxio_utils.get_split_tfxio is not original
            raise RuntimeError
    assert tfxio_utils.get_split_tfxio is original


def test_the_component_is_tfx_own_with_our_executor_under_its_id():
    examples = channel.Channel(type=standard_artifacts.Examples)
    component = statistics_gen.StatisticsGen(examples=examples)
    assert component.id == 'StatisticsGen'
    assert isinstance(component.executor_spec, executor_spec.BeamExecutorSpec)
    assert component.executor_spec.executor_class is statistics_gen.Executor
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel
    nodes = {node.id: node for node in create_pipeline(PipelineConfig(), '/tmp/root',
                                                       '/tmp/serving').components}
    assert isinstance(nodes['StatisticsGen'], statistics_gen.StatisticsGen)
