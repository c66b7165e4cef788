"""Our Transform executor, run for real beside TFX's own on a few hundred examples: it reads and
writes them differently (components/transform.py) and must compute the same."""

import csv
import glob
import json
import os
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.components.transform import executor as tfx_executor
from tfx.proto import transform_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import io_utils, proto_utils

from components import transform
from local_runner import LOCAL_BEAM_ARGS
from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.pipeline import PREPROCESSING_FN
from trainer_module.build import build_model
from trainer_module.data import load_rows, model_inputs
from trainer_module.features import feature_columns_from_transform
from trainer_module.serving import row_to_example

CONFIG = PipelineConfig()
SPLITS = {'train': 300, 'validation': 60}
SCHEMA = io_utils.parse_pbtxt_file(CONFIG.schema, schema_pb2.Schema())
TYPES = {feature.name: feature.type for feature in SCHEMA.feature}

pytestmark = pytest.mark.beam


@pytest.fixture(scope='module')
def rows():
    """{split: the bundled data's rows}, its first rows in order, some values missing (None)."""
    with open(os.path.join(PROJECT_DIR, 'data', 'ecommerce', 'ecommerce.csv')) as f:
        all_rows = [{name: (None if value == '' else float(value)
                            if TYPES[name] == schema_pb2.FLOAT else value)
                     for name, value in row.items()}
                    for row in list(csv.DictReader(f))[:sum(SPLITS.values())]]
    for i, row in enumerate(all_rows[::7]):
        row[list(row)[i % len(row)]] = None
    split_rows, start = {}, 0
    for split, count in SPLITS.items():
        split_rows[split], start = all_rows[start:start + count], start + count
    return split_rows


@pytest.fixture(scope='module')
def examples(tmp_path_factory, rows):
    """`rows` as ExampleGen writes them."""
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path_factory.mktemp('examples'))
    artifact.split_names = artifact_utils.encode_split_names(list(SPLITS))
    for split in SPLITS:
        os.makedirs(os.path.join(artifact.uri, f'Split-{split}'))
        path = os.path.join(artifact.uri, f'Split-{split}', 'data_tfrecord-00000-of-00001.gz')
        with tf.io.TFRecordWriter(path, options='GZIP') as writer:
            for row in rows[split]:
                writer.write(row_to_example(row, TYPES))
    schema_artifact = standard_artifacts.Schema()
    schema_artifact.uri = os.path.dirname(CONFIG.schema)
    return {keys.EXAMPLES_KEY: [artifact], keys.SCHEMA_KEY: [schema_artifact]}


def _run(executor_class, inputs, output, config=CONFIG):
    graph, transformed = standard_artifacts.TransformGraph(), standard_artifacts.Examples()
    graph.uri, transformed.uri = str(output / 'graph'), str(output / 'examples')
    # As pipeline.create_pipeline() configures the component.
    executor_class(executor_class.Context(beam_pipeline_args=list(LOCAL_BEAM_ARGS),
                                          tmp_dir=str(output / 'tmp'), unique_id='1')).Do(
        inputs, {keys.TRANSFORM_GRAPH_KEY: [graph], keys.TRANSFORMED_EXAMPLES_KEY: [transformed]},
        {keys.PREPROCESSING_FN_KEY: PREPROCESSING_FN,
         keys.CUSTOM_CONFIG_KEY: json.dumps(config.transform_dict()),
         keys.SPLITS_CONFIG_KEY: proto_utils.proto_to_json(transform_pb2.SplitsConfig(
             analyze=['train'], transform=list(SPLITS))),
         keys.FORCE_TF_COMPAT_V1_KEY: 1, keys.DISABLE_STATISTICS_KEY: 1})
    return graph.uri, transformed.uri


def _read(pattern):
    """The examples, serialized with their features in one order (a missing label is NaN, which
    equals no NaN as a float)."""
    return [tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True)
            for record in tf.data.TFRecordDataset(sorted(glob.glob(pattern)), 'GZIP')]


@pytest.fixture(scope='module')
def default_config_runs(examples, tmp_path_factory):
    """The default config's Transform by our executor and by TFX's own: (ours, theirs), each
    (graph URI, transformed examples URI)."""
    output = tmp_path_factory.mktemp('default')
    return (_run(transform.Executor, examples, output / 'ours'),
            _run(tfx_executor.Executor, examples, output / 'theirs'))


def test_the_same_vocabularies_and_transformed_examples_as_tfx_own_executor(default_config_runs):
    ours, theirs = default_config_runs
    assets = [sorted(glob.glob(os.path.join(graph, 'transform_fn', 'assets', '*')))
              for graph in (ours[0], theirs[0])]
    assert [os.path.basename(path) for path in assets[0]] == [
        os.path.basename(path) for path in assets[1]]
    assert len(assets[0]) == len(CONFIG.sparse_features)
    for a, b in zip(*assets):
        assert open(a, 'rb').read() == open(b, 'rb').read()
    for split, count in SPLITS.items():
        ours_split, theirs_split = (_read(os.path.join(uri, f'Split-{split}', '*.gz'))
                                    for uri in (ours[1], theirs[1]))
        assert len(ours_split) == count
        assert ours_split == theirs_split


# The edges of the config's lists, each through our executor (the pipeline's) on the same rows: no
# sparse feature, one dense feature (as the bundled data run with `--set 'dense_features=[{name:
# price, log1p: true}]'`) and three tasks, one a regression; one sparse feature and no dense one;
# the default config's many of each and two tasks. A small model: the Trainer's check only builds
# and predicts.
EDGES = {
    'no_sparse_one_dense_three_tasks': [
        'sparse_features=[]', 'dense_features=[{name: price, log1p: true}]',
        'tasks=[{name: ctr, label: click}, {name: ctcvr, label: purchase}, '
        '{name: rating, label: item_rating, type: regression, gate: {max: 1.0}}]'],
    'one_sparse_no_dense': ['sparse_features=[device]', 'dense_features=[]'],
    'default_many_of_each': [],
}
EDGE_COMMON = ['slice_features=[]', 'drift=[]', 'evaluation.group_by=null',
               'model.expert_dnn_hidden_units=[8]',
               'model.tower_dnn_hidden_units=[4]']


@pytest.fixture(scope='module', params=list(EDGES))
def edge(request, examples, tmp_path_factory):
    """(config, Transform graph URI, transformed examples URI) of one edge's Transform run."""
    config = PipelineConfig().with_overrides(EDGES[request.param] + EDGE_COMMON)
    if config.transform_dict() == CONFIG.transform_dict():
        # The same Transform as the default config's: the run compared with TFX's own.
        return (config, *request.getfixturevalue('default_config_runs')[0])
    return (config, *_run(transform.Executor, examples, tmp_path_factory.mktemp(request.param),
                          config))


def _transformed(uri, split):
    """`split`'s transformed examples in their order (that of the input: one file, read and written
    by one in-memory worker), each {feature: its one value}."""
    records = tf.data.TFRecordDataset(
        sorted(glob.glob(os.path.join(uri, f'Split-{split}', '*.gz'))), 'GZIP')
    rows = []
    for record in records:
        features = tf.train.Example.FromString(record.numpy()).features.feature
        rows.append({name: getattr(feature, feature.WhichOneof('kind')).value[0]
                     for name, feature in features.items()})
    return rows


def _numbers(rows, name):
    """A raw column as float64, NaN where missing, with the precision its tf.Example holds."""
    cast = np.float32 if TYPES[name] == schema_pb2.FLOAT else int
    return np.array([np.nan if row[name] is None else float(cast(row[name])) for row in rows])


def _tokens(rows, name):
    """A raw categorical column as the tokens its vocabulary holds (an INT as its decimal text),
    None where missing."""
    return [None if row[name] is None
            else str(int(row[name]) if TYPES[name] == schema_pb2.INT else row[name]).encode()
            for row in rows]


def _vocabulary(tokens):
    """Present tokens by decreasing count, ties by token."""
    counts = Counter(token for token in tokens if token is not None)
    return sorted(counts, key=lambda token: (-counts[token], token))


def _z_scores(train, values, log1p):
    """`values` scaled by `train`'s statistics the plain way: `train`'s missing values filled with
    the mean of its present ones, then (x - mean) / std, 0 where `values` has none."""
    if log1p:
        train, values = (np.log1p(np.where(x < 0, 0.0, x)) for x in (train, values))
    mean = np.nanmean(train)
    std = np.where(np.isnan(train), mean, train).std()
    centred = np.where(np.isnan(values), 0.0, values - mean)
    return centred / std if std > 0 else centred


def test_transform_at_the_edges_of_the_config_lists(edge, rows):
    """Every output is what numpy computes from the same rows: vocabularies and ids from the
    training split's counts, z-scores from its mean and standard deviation, labels as they are."""
    config, graph, transformed = edge
    sparse = [feature.name for feature in config.sparse_features]
    names = sorted(sparse + [feature.name for feature in config.dense_features]
                   + list(config.label_columns))
    output = tft.TFTransformOutput(graph)
    vocabularies = {name: _vocabulary(_tokens(rows['train'], name)) for name in sparse}
    for name, vocabulary in vocabularies.items():
        assert output.vocabulary_by_name(name) == vocabulary
    for split in SPLITS:
        actual = _transformed(transformed, split)
        assert len(actual) == len(rows[split])
        assert all(sorted(row) == names for row in actual)
        for name, vocabulary in vocabularies.items():
            # Missing or unseen: the one OOV id, after the vocabulary.
            assert [row[name] for row in actual] == [
                vocabulary.index(token) if token in vocabulary else len(vocabulary)
                for token in _tokens(rows[split], name)]
        for feature in config.dense_features:
            np.testing.assert_allclose(
                [row[feature.name] for row in actual],
                _z_scores(_numbers(rows['train'], feature.name),
                          _numbers(rows[split], feature.name), feature.log1p),
                rtol=1e-6, atol=1e-6, err_msg=f'{split} {feature.name}')
        for label in config.label_columns:
            np.testing.assert_array_equal([row[label] for row in actual],
                                          _numbers(rows[split], label).astype(np.float32))


def test_the_trainers_model_predicts_each_task_from_each_edge_transform_output(edge):
    """The Trainer's feature columns, inputs and model from the Transform output (training on the
    config's edges is in tests/test_models.py)."""
    config, graph, transformed = edge
    settings = config.trainer_settings()
    output = tft.TFTransformOutput(graph)
    columns = feature_columns_from_transform(settings, output)
    assert [column.name for column in columns] == (
        [feature.name for feature in config.sparse_features]
        + [feature.name for feature in config.dense_features])
    rows, _ = load_rows([os.path.join(transformed, 'Split-validation', '*.gz')],
                        output.transformed_feature_spec())
    predictions = build_model(settings, columns).predict(model_inputs(rows, columns), verbose=0)
    assert len(predictions) == len(config.tasks)
    for task, prediction in zip(config.tasks, predictions):
        assert prediction.shape == (SPLITS['validation'], 1)
        assert np.all(np.isfinite(prediction))
        if task.type == 'binary':
            assert np.all((prediction > 0) & (prediction < 1))
