"""The whole pipeline, run for real (Beam DirectRunner, SQLite MLMD) on 2k generated rows."""

import csv
import os

import numpy as np
import pytest
import tensorflow as tf

from pipeline.config import PipelineConfig

CONFIG = PipelineConfig()
EXPECTED_NODES = {'CsvExampleGen', 'StatisticsGen', 'ImportSchemaGen', 'ExampleValidator',
                  'AnomalyCheck', 'Transform', 'Trainer', 'latest_blessed_model_resolver',
                  'Evaluator.ctr', 'Evaluator.ctcvr', 'BlessingGate', 'Pusher'}
# The Bayes AUCs of the generated data are about 0.77 (ctr) and 0.81 (ctcvr); 2k rows and a few
# hundred steps must still learn clearly more than chance.
MIN_AUC = 0.6


@pytest.fixture(scope='module')
def first_run(default_runs):
    return default_runs[0]


def _raw_examples(csv_path, rows, drop=(), replace=None):
    """Serialized tf.Examples built from raw CSV rows, typed as the schema says."""
    int_columns = {'hour', 'user_click_count', 'user_purchase_count', 'item_review_count', 'click',
                   'purchase'}
    examples = []
    with open(csv_path) as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= rows:
                break
            row.update(replace or {})
            feature = {}
            for name, value in row.items():
                if name in drop or name in CONFIG.label_columns:
                    continue
                if name in int_columns:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
                elif name in {f.name for f in CONFIG.dense_features}:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
                else:
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
            examples.append(tf.train.Example(features=tf.train.Features(feature=feature))
                            .SerializeToString())
    return tf.constant(examples)


def test_every_component_executed(first_run):
    states = first_run.states()
    assert set(states) == EXPECTED_NODES
    assert all(state == 'COMPLETE' for state in states.values()), states


def test_progress_lines_name_each_component_and_training(first_run):
    for node in EXPECTED_NODES:
        assert f'{node} done in ' in first_run.stdout, first_run.stdout
    assert 'Trainer step 30/' in first_run.stdout
    assert 'loss' in first_run.stdout
    # The flood of library logging went to the log file, not the terminal.
    assert 'absl' not in first_run.stdout and 'absl' not in first_run.stderr
    log_path = first_run.summary['paths']['log']
    assert log_path.startswith(first_run.output) and os.path.getsize(log_path) > 0


def test_everything_is_written_under_the_output_directory(first_run):
    paths = first_run.summary['paths']
    for key in ('pipeline_root', 'metadata', 'serving', 'log'):
        assert paths[key].startswith(first_run.output + os.sep)
        assert os.path.exists(paths[key]), key
    assert first_run.summary['pushed_model'].startswith(paths['serving'])


def test_both_tasks_learn_and_are_blessed(first_run):
    for task in CONFIG.task_names:
        result = first_run.summary['tasks'][task]
        assert result['metrics']['auc'] > MIN_AUC, (task, result['metrics'])
        assert result['verdict']['blessed'], result['verdict']
    assert 'Pipeline finished' in first_run.stdout
    assert 'ctr: auc' in first_run.stdout and 'pushed model:' in first_run.stdout


def test_pushed_model_serves_raw_examples(first_run, small_data):
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    assert {'serving_default', 'transform_features'} <= set(model.signatures)
    examples = _raw_examples(os.path.join(small_data, 'ecommerce.csv'), rows=32)
    scores = model.signatures['serving_default'](examples=examples)
    assert set(scores) == set(CONFIG.task_names)
    for task in CONFIG.task_names:
        values = scores[task].numpy()
        assert values.shape == (32, 1)
        assert np.all((values >= 0) & (values <= 1)), task
    # Scores vary with the input: the model is not a constant.
    assert np.std(scores['ctr'].numpy()) > 1e-4


def test_pushed_model_scores_unseen_categories(first_run, small_data):
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    examples = _raw_examples(os.path.join(small_data, 'ecommerce.csv'), rows=4,
                             replace={'user_id': 'never-seen-user', 'item_id': 'never-seen-item'})
    scores = model.signatures['serving_default'](examples=examples)
    for task in CONFIG.task_names:
        assert np.all(np.isfinite(scores[task].numpy()))


def test_transform_features_signature_maps_unseen_values_to_oov(first_run, small_data):
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    examples = _raw_examples(os.path.join(small_data, 'ecommerce.csv'), rows=2,
                             replace={'user_id': 'never-seen-user'})
    # transform_features parses labels too: add them back.
    parsed = [tf.train.Example.FromString(e) for e in examples.numpy()]
    for example in parsed:
        for label in CONFIG.label_columns:
            example.features.feature[label].int64_list.value.append(0)
    transformed = model.signatures['transform_features'](
        examples=tf.constant([e.SerializeToString() for e in parsed]))
    user_ids = transformed['user_id'].numpy()
    assert np.all(user_ids >= 0)
    assert len(set(user_ids.tolist())) == 1  # both unseen users share the OOV id


def test_second_run_reuses_cached_executions(default_runs):
    _, second = default_runs
    states = second.states()
    for node in ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Trainer'):
        assert states[node] == 'CACHED', states
    assert 'Transform reused from cache' in second.stdout
