"""Warm start (trainer_module/warm_start.py): the Trainer's new model from the weights of the
model that serves. Tiny models on tiny vocabularies: the embedding rows carried over by token (old
tokens keep their rows, new ones their fresh rows, dropped ones go; OOV and hashed rows by index),
every other weight copied exactly, the same predictions on what both models know; a base model
whose features, tasks or architecture differ refused naming the difference, or a cold start where
the config says so; no base model, a cold start. One round trip goes through the Trainer's own
export on the checked-in Transform output; the others save the base model as the export does
(`save_format='tf'`, no traces), with its vocabulary files in its assets and its provenance."""

import csv
import dataclasses
import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from trainer_module.build import build_model
from trainer_module.features import (
    DenseFeature,
    SequenceFeature,
    SparseFeature,
    feature_columns_from_transform,
)
from trainer_module.layers import SparseEmbeddings
from trainer_module.provenance import write_provenance
from trainer_module.settings import (
    PROVENANCE_FILE,
    ModelConfig,
    TaskHead,
    TrainerSettings,
    TrainingConfig,
)
from trainer_module.warm_start import (
    carry_buckets,
    carry_rows,
    differences,
    read_vocabulary,
    warm_start,
)

TRANSFORM_OUTPUT = os.path.join(os.path.dirname(__file__), 'testdata', 'ecommerce_transform',
                                'transform_graph')
# The rows the checked-in Transform output was made from.
TRANSFORM_ROWS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'data', 'ecommerce',
                              'ecommerce.csv')
ZIP_BUCKETS = 5
# The base model's vocabularies, and the new data's: tokens dropped, new ones, others moved.
OLD = {'user': [b'u1', b'u2', b'u3', b'u4', b'u5', b'u6'],
       'item': [b'i1', b'i2', b'i3', b'i4', b'i5'],
       'tags': [b't1', b't2', b't3']}
NEW = {'user': [b'u6', b'u9', b'u2', b'u1', b'u8'],
       'item': [b'i5', b'i1', b'i7', b'i2'],
       'tags': [b't3', b't1', b't2', b't4']}
OOV = {'user': 2, 'item': 1, 'tags': 1}
# The file names the Transform gives them (preprocessing.vocabulary_asset, in feature order).
ASSETS = {'user': 'vocabulary_000_user', 'item': 'vocabulary_001_item',
          'tags': 'vocabulary_002_tags'}
TINY = dict(expert_dnn_hidden_units=(4,), tower_dnn_hidden_units=(3,))
ARCHITECTURES = {
    'mmoe': ModelConfig(num_experts=2, gate_dnn_hidden_units=(2,), **TINY),
    'ple': ModelConfig(architecture='ple', num_levels=2, **TINY),
}


def tiny_settings(model=ARCHITECTURES['mmoe'], loss_weighting='fixed', mismatch='fail',
                  warm=True, tasks=('ctr', 'ctcvr')):
    """Bounded, hashed and list features (one list shares the item table, its attention queries
    the item), a number, two tasks."""
    return TrainerSettings(
        sparse_features=(SparseFeature('user', embedding_dim=3, num_oov_buckets=OOV['user']),
                         SparseFeature('item', embedding_dim=3),
                         SparseFeature('zip', embedding_dim=2, hash_buckets=ZIP_BUCKETS)),
        sequence_features=(SequenceFeature('hist', max_length=3, embedding_name='item',
                                           combiner='attention', query='item'),
                           SequenceFeature('tags', max_length=2, combiner='sum',
                                           embedding_dim=2)),
        dense_features=(DenseFeature('price'),),
        tasks=tuple(TaskHead(name, label) for name, label in zip(tasks, ('click', 'buy'))),
        model=model,
        training=TrainingConfig(loss_weighting=loss_weighting, warm_start=warm,
                                warm_start_mismatch=mismatch))


class TinyTransformOutput:
    """What the warm start and the feature columns read of a `tft.TFTransformOutput`: its
    vocabulary files, by name."""

    def __init__(self, directory, vocabularies):
        self.files = {}
        os.makedirs(directory, exist_ok=True)
        for name, tokens in vocabularies.items():
            self.files[name] = os.path.join(directory, ASSETS[name])
            with open(self.files[name], 'wb') as f:
                f.write(b''.join(token + b'\n' for token in tokens))

    def vocabulary_file_by_name(self, name):
        return self.files[name]

    def vocabulary_size_by_name(self, name):
        return len(read_vocabulary(self.files[name]))


def built(settings, transform_output):
    return build_model(settings, feature_columns_from_transform(settings, transform_output))


def randomized(model, seed=7):
    """`model` with every weight drawn anew: a base model whose weights are nothing like the new
    model's initial ones."""
    generator = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(generator.normal(0.1, 0.6, size=variable.shape).astype(np.float32))
    return model


def save_base(model, settings, directory):
    """`model` saved as the Trainer's export saves it, with OLD's vocabulary files among its
    assets and the provenance of `settings`."""
    model.save(directory, save_format='tf', save_traces=False)
    os.makedirs(os.path.join(directory, 'assets'), exist_ok=True)
    for name, tokens in OLD.items():
        with open(os.path.join(directory, 'assets', ASSETS[name]), 'wb') as f:
            f.write(b''.join(token + b'\n' for token in tokens))
    write_provenance(directory, settings, {'train': 'a', 'validation': 'b'}, {}, {})
    return directory


def tables(model):
    """{table: its [rows, dimension] values} of the model's SparseEmbeddings."""
    layer = next(layer for layer in model.layers if isinstance(layer, SparseEmbeddings))
    found = {}
    for (_, _, members), variable in zip(layer._groups, layer.tables):
        for i, first_row, size in members:
            found[layer.features[i][0]] = variable.numpy()[first_row:first_row + size]
    return found


def other_weights(model):
    """{layer/index: values} of every weight outside the embedding tables."""
    return {f'{layer.name}/{i}': weight.numpy() for layer in model.layers
            if not isinstance(layer, SparseEmbeddings) for i, weight in enumerate(layer.weights)}


def inputs(vocabularies, users, items, zips, hists, tags):
    """Model inputs of rows given as tokens (a token, or ('oov', k) for OOV bucket k), as ids of
    `vocabularies`."""
    def ids(name, token):
        if isinstance(token, tuple):
            return len(vocabularies[name]) + token[1]
        return vocabularies[name].index(token)

    def padded(name, rows, length):
        return np.array([[ids(name, t) for t in row] + [0] * (length - len(row)) for row in rows],
                        np.int32)

    return {'user': np.array([[ids('user', t)] for t in users], np.int32),
            'item': np.array([[ids('item', t)] for t in items], np.int32),
            'zip': np.array([[z] for z in zips], np.int32),
            'hist': padded('item', hists, 3),
            'hist_length': np.array([[len(row)] for row in hists], np.int32),
            'tags': padded('tags', tags, 2),
            'tags_length': np.array([[len(row)] for row in tags], np.int32),
            'price': np.array([[0.5], [-1.0], [2.0]], np.float32)}


# Rows of tokens both vocabularies hold, and OOV buckets.
KNOWN_ROWS = dict(users=[b'u1', b'u6', ('oov', 1)], items=[b'i2', b'i5', ('oov', 0)],
                  zips=[0, 3, 4], hists=[[b'i1', b'i2'], [], [b'i5', ('oov', 0), b'i1']],
                  tags=[[b't1'], [b't3', b't2'], []])


@pytest.fixture(scope='module')
def new_output(tmp_path_factory):
    return TinyTransformOutput(str(tmp_path_factory.mktemp('new_vocabularies')), NEW)


@pytest.fixture(scope='module')
def base(tmp_path_factory):
    """{architecture: (the base model's directory, the base model)}, saved once each."""
    old_output = TinyTransformOutput(str(tmp_path_factory.mktemp('old_vocabularies')), OLD)
    saved = {}
    for name, model_config in ARCHITECTURES.items():
        settings = tiny_settings(model_config, loss_weighting='uncertainty')
        model = randomized(built(settings, old_output))
        saved[name] = (save_base(model, settings, str(tmp_path_factory.mktemp(name))), model)
    return saved


def test_rows_are_carried_over_by_token():
    old = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)  # a, b, c, d, then 2 OOV rows
    fresh = -np.ones((7, 2), np.float32)  # d, e, b, a, f, then 2 OOV rows
    table, counts = carry_rows(old, [b'a', b'b', b'c', b'd'], 2, fresh,
                               [b'd', b'e', b'b', b'a', b'f'], 2)
    np.testing.assert_array_equal(table, [old[3], fresh[1], old[1], old[0], fresh[4], old[4],
                                          old[5]])
    assert counts == {'by': 'token', 'carried': 3, 'new': 2, 'dropped': 1, 'oov_copied': 2,
                      'oov_fresh': 0}
    # Another number of OOV buckets hashes values elsewhere: those rows start fresh.
    table, counts = carry_rows(old, [b'a', b'b', b'c', b'd'], 2, fresh[:6],
                               [b'd', b'e', b'b', b'a', b'f'], 1)
    np.testing.assert_array_equal(table[5], fresh[5])
    assert (counts['oov_copied'], counts['oov_fresh']) == (0, 1)
    with pytest.raises(ValueError, match='the new table has 7 rows, its vocabulary and OOV '
                                         'buckets 6'):
        carry_rows(old, [b'a', b'b', b'c', b'd'], 2, fresh, [b'd', b'e', b'b', b'a'], 2)


def test_hashed_rows_are_copied_by_index_when_the_bucket_count_holds():
    old, fresh = np.ones((5, 2)), np.zeros((5, 2))
    table, counts = carry_buckets(old, fresh)
    np.testing.assert_array_equal(table, old)
    assert (counts['by'], counts['carried'], counts['new']) == ('index', 5, 0)
    table, counts = carry_buckets(old, np.zeros((7, 2)))
    np.testing.assert_array_equal(table, np.zeros((7, 2)))
    assert (counts['carried'], counts['new'], counts['dropped']) == (0, 7, 5)


@pytest.mark.parametrize('architecture', sorted(ARCHITECTURES))
def test_a_warm_start_carries_every_weight_and_each_row_by_token(architecture, base, new_output):
    directory, base_model = base[architecture]
    settings = tiny_settings(ARCHITECTURES[architecture], loss_weighting='uncertainty')
    model = built(settings, new_output)
    fresh = tables(model)
    report = warm_start(model, settings, new_output, directory)

    assert (report['warm'], report['base_model'], report['reason']) == (True, directory, '')
    # Every weight but the tables, exactly.
    theirs, ours = other_weights(base_model), other_weights(model)
    assert set(theirs) == set(ours) and len(ours) == len(report['variables_copied'])
    for key, value in ours.items():
        np.testing.assert_array_equal(value, theirs[key], err_msg=key)
    # The tables: by token, the OOV rows by index, the hashed one whole; item once, for both the
    # item and the list that shares its table.
    old_tables, new_tables = tables(base_model), tables(model)
    assert set(report['tables']) == {'user', 'item', 'zip', 'tags'}
    for name in ('user', 'item', 'tags'):
        for row, token in enumerate(NEW[name]):
            if token in OLD[name]:
                expected = old_tables[name][OLD[name].index(token)]
            else:
                expected = fresh[name][row]
            np.testing.assert_array_equal(new_tables[name][row], expected, err_msg=repr(token))
        np.testing.assert_array_equal(new_tables[name][len(NEW[name]):],
                                      old_tables[name][len(OLD[name]):])
    np.testing.assert_array_equal(new_tables['zip'], old_tables['zip'])
    assert report['tables']['user'] == {'by': 'token', 'carried': 3, 'new': 2, 'dropped': 3,
                                        'oov_copied': 2, 'oov_fresh': 0}
    assert report['tables']['item'] == {'by': 'token', 'carried': 3, 'new': 1, 'dropped': 2,
                                        'oov_copied': 1, 'oov_fresh': 0}
    assert report['tables']['zip']['carried'] == ZIP_BUCKETS
    assert report['optimizer'].startswith('not carried')
    # The same function on what both know: the same rows, by token, under other ids (where the
    # model as built predicts otherwise).
    old_predictions = base_model(inputs(OLD, **KNOWN_ROWS), training=False)
    cold_predictions = built(settings, new_output)(inputs(NEW, **KNOWN_ROWS), training=False)
    new_predictions = model(inputs(NEW, **KNOWN_ROWS), training=False)
    for theirs_, cold_, ours_ in zip(old_predictions, cold_predictions, new_predictions):
        assert np.abs(np.asarray(cold_) - np.asarray(theirs_)).max() > 1e-3
        np.testing.assert_allclose(ours_, theirs_, rtol=1e-6, atol=1e-7)


def test_loss_weighting_is_no_mismatch(base, new_output, tmp_path):
    """The base learned its tasks' variances (uncertainty), the new config weighs them fixed, and
    the other way round: warm both ways, the variances fresh where the base has none."""
    directory, _ = base['mmoe']
    settings = tiny_settings(loss_weighting='fixed')
    report = warm_start(built(settings, new_output), settings, new_output, directory)
    assert report['warm'] and not report['variables_fresh']
    assert not any('log_variance' in name for name in report['variables_copied'])
    fixed = save_base(randomized(built(settings, TinyTransformOutput(str(tmp_path / 'old'), OLD))),
                      settings, str(tmp_path / 'fixed'))
    uncertainty = tiny_settings(loss_weighting='uncertainty')
    model = built(uncertainty, new_output)
    report = warm_start(model, uncertainty, new_output, fixed)
    assert report['warm'] and report['variables_fresh'] == ['log_variance:0']
    np.testing.assert_array_equal(model.task_uncertainty.log_variance.numpy(), [0, 0])


def test_a_warm_start_writes_into_a_mirrored_model(base, new_output):
    directory, base_model = base['mmoe']
    settings = tiny_settings(loss_weighting='uncertainty')
    with tf.distribute.MirroredStrategy(['/cpu:0']).scope():
        model = built(settings, new_output)
    assert warm_start(model, settings, new_output, directory)['warm']
    theirs = other_weights(base_model)
    for key, value in other_weights(model).items():
        np.testing.assert_array_equal(value, theirs[key], err_msg=key)


def test_the_differences_name_features_tasks_and_architecture():
    settings = tiny_settings()
    assert differences(settings, settings) == []
    # Training settings, vocabulary bounds and OOV buckets, list lengths: no mismatch.
    other = dataclasses.replace(
        settings, num_oov_buckets=3,
        sparse_features=(dataclasses.replace(settings.sparse_features[0], top_k=2,
                                             num_oov_buckets=4),) + settings.sparse_features[1:],
        sequence_features=(dataclasses.replace(settings.sequence_features[0], max_length=9),)
        + settings.sequence_features[1:],
        tasks=tuple(dataclasses.replace(task, loss_weight=0.5) for task in settings.tasks),
        model=dataclasses.replace(settings.model, l2_reg_dnn=0.1, dnn_dropout=0.2, seed=1),
        training=dataclasses.replace(settings.training, learning_rate=0.1, epochs=1.0))
    assert differences(settings, other) == []
    changed = dataclasses.replace(
        settings, dense_features=(DenseFeature('price'), DenseFeature('rating')),
        sparse_features=(dataclasses.replace(settings.sparse_features[0], embedding_dim=4),)
        + settings.sparse_features[1:],
        model=dataclasses.replace(settings.model, num_experts=3, expert_dnn_hidden_units=(5,)))
    assert differences(settings, changed) == [
        "the serving model has dense_features ('price',), this config ('price', 'rating')",
        'the serving model has sparse_features.user.embedding_dim 3, this config 4',
        'the serving model has model.num_experts 2, this config 3',
        'the serving model has model.expert_dnn_hidden_units (4,), this config (5,)']


def test_a_mismatch_is_refused_naming_it_or_starts_cold_where_the_config_says(
        base, new_output, caplog):
    directory, _ = base['mmoe']
    settings = tiny_settings(tasks=('ctr', 'cvr'))
    model = built(settings, new_output)
    before = [weight.numpy() for weight in model.weights]
    with pytest.raises(ValueError, match=r"warm start: the serving model has tasks \('ctr', "
                                         r"'ctcvr'\), this config \('ctr', 'cvr'\)") as error:
        warm_start(model, settings, new_output, directory)
    assert 'training.warm_start_mismatch: cold_start' in str(error.value)
    cold = dataclasses.replace(settings, training=dataclasses.replace(
        settings.training, warm_start_mismatch='cold_start'))
    with caplog.at_level(logging.WARNING):
        report = warm_start(model, cold, new_output, directory)
    assert not report['warm'] and "has tasks ('ctr', 'ctcvr'), this config ('ctr', 'cvr')" in \
        report['reason']
    assert any("this config ('ctr', 'cvr')" in record.getMessage() for record in caplog.records)
    for value, weight in zip(before, model.weights):
        np.testing.assert_array_equal(weight.numpy(), value)
    # Another architecture is a mismatch too.
    ple = tiny_settings(ARCHITECTURES['ple'])
    with pytest.raises(ValueError, match="model.architecture 'mmoe', this config 'ple'"):
        warm_start(built(ple, new_output), ple, new_output, directory)


def test_a_base_model_without_provenance_is_a_mismatch(base, new_output, tmp_path):
    directory = str(tmp_path / 'base')
    shutil.copytree(base['mmoe'][0], directory)
    os.remove(os.path.join(directory, PROVENANCE_FILE))
    settings = tiny_settings()
    with pytest.raises(ValueError, match=f'has no {PROVENANCE_FILE}'):
        warm_start(built(settings, new_output), settings, new_output, directory)
    cold = tiny_settings(mismatch='cold_start')
    assert not warm_start(built(cold, new_output), cold, new_output, directory)['warm']


@pytest.mark.parametrize('given', [None, '', 'missing', 'empty'])
def test_no_base_model_starts_cold(given, new_output, tmp_path):
    """No base_model input, or a ServingBaseline's empty model where nothing serves yet."""
    if given == 'missing':
        given = str(tmp_path / 'Format-Serving')
    elif given == 'empty':
        given = str(tmp_path)
    settings = tiny_settings()
    model = built(settings, new_output)
    before = [weight.numpy() for weight in model.weights]
    report = warm_start(model, settings, new_output, given)
    assert report['warm'] is False and report['base_model'] == (given or '')
    assert 'nothing serves yet' in report['reason']
    for value, weight in zip(before, model.weights):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_warm_start_off_leaves_the_model_as_built(base, new_output):
    settings = tiny_settings(warm=False)
    report = warm_start(built(settings, new_output), settings, new_output, base['mmoe'][0])
    assert (report['warm'], report['reason']) == (False, 'training.warm_start is off')


def test_a_round_trip_through_the_trainers_export(tmp_path):
    """The base exported by the Trainer's export on the checked-in Transform output; the new data's
    user_id vocabulary lost five tokens, gained three, and reads backwards."""
    settings = TrainerSettings(
        sparse_features=tuple(SparseFeature(name, embedding_dim=4)
                              for name in ('user_id', 'item_id', 'device')),
        dense_features=(DenseFeature('price'),),
        tasks=(TaskHead('ctr', 'click'), TaskHead('ctcvr', 'purchase')),
        model=ModelConfig(num_experts=2, **TINY), training=TrainingConfig(warm_start=True))
    from trainer_module.export import export_serving_model
    old_output = tft.TFTransformOutput(TRANSFORM_OUTPUT)
    columns = feature_columns_from_transform(settings, old_output)
    base_model = randomized(build_model(settings, columns))
    export_serving_model(base_model, old_output, settings, columns, str(tmp_path / 'base'))
    write_provenance(str(tmp_path / 'base'), settings, {'train': 'a', 'validation': 'b'}, {}, {})

    shutil.copytree(TRANSFORM_OUTPUT, tmp_path / 'transform')
    new_output = tft.TFTransformOutput(str(tmp_path / 'transform'))
    old_users = read_vocabulary(new_output.vocabulary_file_by_name('user_id'))
    new_users = [b'new_a', b'new_b'] + old_users[5:][::-1] + [b'new_c']
    with open(new_output.vocabulary_file_by_name('user_id'), 'wb') as f:
        f.write(b''.join(token + b'\n' for token in new_users))
    model = built(settings, new_output)
    report = warm_start(model, settings, new_output, str(tmp_path / 'base'))
    assert report['tables']['user_id'] == {'by': 'token', 'carried': len(old_users) - 5,
                                           'new': 3, 'dropped': 5, 'oov_copied': 1,
                                           'oov_fresh': 0}
    old_tables, new_tables = tables(base_model), tables(model)
    for row, token in enumerate(new_users):
        if token in old_users:
            np.testing.assert_array_equal(new_tables['user_id'][row],
                                          old_tables['user_id'][old_users.index(token)])
    np.testing.assert_array_equal(new_tables['item_id'], old_tables['item_id'])
    theirs = other_weights(base_model)
    for key, value in other_weights(model).items():
        np.testing.assert_array_equal(value, theirs[key], err_msg=key)
    json.dumps(report)  # it goes into the provenance and ML Metadata as JSON


def test_the_trainer_executor_records_the_warm_start_on_the_model(tmp_path, monkeypatch):
    from tfx.components.trainer import executor as tfx_trainer_executor
    from tfx.types import standard_artifacts
    from tfx.types import standard_component_specs as keys

    from components import trainer_executor

    settings = tiny_settings()
    reports = {'warm': {'base_model': '/serving/1', 'warm': True, 'reason': '', 'tables': {}},
               'cold': {'base_model': '', 'warm': False, 'reason': 'no base model given'}}
    for name, report in reports.items():
        model = standard_artifacts.Model()
        model.uri = str(tmp_path / name)
        monkeypatch.setattr(
            tfx_trainer_executor.GenericExecutor, 'Do',
            lambda self, *args, report=report, uri=model.uri: write_provenance(
                os.path.join(uri, 'Format-Serving'), settings,
                {'train': 'a', 'validation': 'b'}, {}, {}, report))
        trainer_executor.Executor().Do({}, {keys.MODEL_KEY: [model]}, {})
        assert model.get_string_custom_property('warm_started_from') == (
            '/serving/1' if name == 'warm' else '')
        assert json.loads(model.get_string_custom_property('warm_start')) == report


def transformed_rows(output, path, rows=50):
    """The first `rows` rows of the bundled data through the checked-in Transform graph, written
    as the Trainer reads Transform's examples (gzipped TFRecords of tf.Examples); their path."""
    raw_spec = output.raw_feature_spec()
    with open(TRANSFORM_ROWS) as f:
        cells = [row for _, row in zip(range(rows), csv.DictReader(f))]

    def feature(values, dtype):
        if dtype == tf.string:
            return tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[str(v).encode() for v in values]))
        if dtype == tf.int64:
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))

    raw = [tf.train.Example(features=tf.train.Features(feature={
        name: feature([row[name]], spec.dtype) for name, spec in raw_spec.items()
        if row[name] != ''})).SerializeToString() for row in cells]
    transformed = output.transform_features_layer()(tf.io.parse_example(raw, raw_spec))
    with tf.io.TFRecordWriter(str(path), options='GZIP') as writer:
        for i in range(len(cells)):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                name: feature(np.reshape(values[i].numpy(), [-1]).tolist(), values.dtype)
                for name, values in transformed.items()})).SerializeToString())
    return str(path)


@pytest.mark.slow
def test_the_trainer_starts_from_its_base_model_and_records_it(tmp_path):
    """`run_fn` twice on the checked-in Transform output: first with no base model (cold), then
    from the first one's SavedModel; the provenance says which."""
    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer_module import run

    examples = transformed_rows(tft.TFTransformOutput(TRANSFORM_OUTPUT), tmp_path / 'rows.gz')
    settings = TrainerSettings(
        sparse_features=tuple(SparseFeature(name, embedding_dim=4)
                              for name in ('user_id', 'item_id', 'device')),
        dense_features=(DenseFeature('price'),),
        tasks=(TaskHead('ctr', 'click'), TaskHead('ctcvr', 'purchase')),
        model=ModelConfig(num_experts=2, **TINY),
        # Op determinism would stay on for the rest of the test process.
        training=TrainingConfig(warm_start=True, epochs=1.0, batch_size=16, evaluations_per_epoch=1,
                                steps_per_execution=1, deterministic=False))

    def train(name, base_model):
        serving = tmp_path / name / 'Format-Serving'
        run.run_fn(FnArgs(train_files=[examples], eval_files=[examples],
                          transform_output=TRANSFORM_OUTPUT, serving_model_dir=str(serving),
                          model_run_dir=str(tmp_path / name / 'logs'), base_model=base_model,
                          custom_config=settings.to_dict()))
        with open(serving / PROVENANCE_FILE) as f:
            return json.load(f)['warm_start'], str(serving)

    first, first_model = train('first', None)
    assert (first['warm'], first['reason']) == (
        False, 'no base model given to the Trainer (nothing serves yet)')
    second, _ = train('second', first_model)
    assert (second['warm'], second['base_model']) == (True, first_model)
    assert second['tables']['user_id'] == {'by': 'token', 'carried': 50, 'new': 0, 'dropped': 0,
                                           'oov_copied': 1, 'oov_fresh': 0}
