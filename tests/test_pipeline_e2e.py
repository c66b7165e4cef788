"""The whole pipeline, run for real (Beam DirectRunner, SQLite MLMD) on 2k generated rows."""

import csv
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import MULTI_PROCESSING, SMALL_TRAINING, SPLIT_DATA, run_pipeline
from pipeline.config import PipelineConfig

CONFIG = PipelineConfig()
EXPECTED_NODES = {'CsvExampleGen', 'previous_statistics_resolver', 'StatisticsGen', 'ImportSchemaGen',
                  'ExampleValidator', 'DriftValidator',
                  'AnomalyCheck', 'Transform', 'Trainer', 'latest_blessed_model_resolver',
                  'Evaluator.ctr', 'Evaluator.ctcvr', 'BlessingGate', 'Dashboard', 'Pusher'}
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


def test_pushed_model_serves_raw_examples(first_run, small_csv):
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    assert {'serving_default', 'transform_features'} <= set(model.signatures)
    examples = _raw_examples(small_csv, rows=32)
    scores = model.signatures['serving_default'](examples=examples)
    assert set(scores) == set(CONFIG.task_names)
    for task in CONFIG.task_names:
        values = scores[task].numpy()
        assert values.shape == (32, 1)
        assert np.all((values >= 0) & (values <= 1)), task
    # Scores vary with the input: the model is not a constant.
    assert np.std(scores['ctr'].numpy()) > 1e-4


def test_pushed_model_scores_unseen_categories(first_run, small_csv):
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    examples = _raw_examples(small_csv, rows=4,
                             replace={'user_id': 'never-seen-user', 'item_id': 'never-seen-item'})
    scores = model.signatures['serving_default'](examples=examples)
    for task in CONFIG.task_names:
        assert np.all(np.isfinite(scores[task].numpy()))


def test_pushed_model_scores_examples_missing_an_optional_feature(first_run, small_csv):
    """Numbers are optional in the schema: a missing one is the training mean, as in Transform."""
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    scores = model.signatures['serving_default'](
        examples=_raw_examples(small_csv, rows=4, drop={'price', 'item_rating'}))
    for task in CONFIG.task_names:
        assert np.all(np.isfinite(scores[task].numpy()))


def test_malformed_input_is_an_error_that_says_so_and_serving_goes_on(first_run, small_csv):
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    with pytest.raises(tf.errors.InvalidArgumentError, match='Could not parse example input'):
        model.signatures['serving_default'](examples=tf.constant([b'\x0fnot a tf.Example']))
    scores = model.signatures['serving_default'](examples=_raw_examples(small_csv, rows=2))
    assert scores['ctr'].shape == (2, 1)


def test_transform_features_signature_maps_unseen_values_to_oov(first_run, small_csv):
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    examples = _raw_examples(small_csv, rows=2,
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


def test_gate_report_beside_the_model_and_gate_signature(first_run, small_csv):
    model_uri = first_run.summary['nodes']['Trainer']['outputs']['model'][0]['uri']
    with open(os.path.join(model_uri, 'gate_report', 'gates.json')) as f:
        report = json.load(f)
    assert set(report['gates']) == set(CONFIG.task_names)
    assert report['examples'] == first_run.summary['tasks']['ctr']['metrics']['example_count']
    for weights in report['gates'].values():
        assert len(weights) == CONFIG.model.num_experts
        assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    assert os.path.getsize(os.path.join(model_uri, 'gate_report', 'gates.png')) > 1000
    assert 'Trainer mean gate weights per expert' in first_run.stdout

    model = tf.saved_model.load(first_run.summary['pushed_model'])
    gates = model.signatures['gate_weights'](
        examples=_raw_examples(small_csv, rows=8))
    for task in CONFIG.task_names:
        np.testing.assert_allclose(gates[task].numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_tensorboard_logs_every_task_metric(first_run):
    run_dir = first_run.summary['nodes']['Trainer']['outputs']['model_run'][0]['uri']
    logged = set()
    for path in glob.glob(os.path.join(run_dir, '**', 'events.out.tfevents.*'), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            logged.update((os.path.basename(os.path.dirname(path)), value.tag)
                          for value in event.summary.value)
    for split in ('train', 'validation'):
        for task in CONFIG.task_names:
            assert (split, f'epoch_{task}_auc') in logged, sorted(logged)
            assert (split, f'epoch_{task}_loss') in logged


def test_second_run_reuses_cached_executions(default_runs):
    _, second = default_runs
    states = second.states()
    for node in ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Trainer'):
        assert states[node] == 'CACHED', states
    assert 'Transform reused from cache' in second.stdout


def test_beam_steps_run_on_the_multi_processing_direct_runner(broken_candidate_run):
    run, _, _ = broken_candidate_run
    assert set(MULTI_PROCESSING) <= set(run.args)
    states = run.states()
    for node in ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Evaluator.ctr',
                 'Evaluator.ctcvr'):
        assert states[node] == 'COMPLETE', states


@pytest.fixture(scope='module')
def refused_run(default_runs, small_data):
    """A third run into the same output with an unreachable AUC floor for ctr only."""
    first, _ = default_runs
    serving = first.summary['paths']['serving']
    pushed_before = sorted(os.listdir(serving))
    run = run_pipeline(first.output, '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING, '--set',
                       'tasks=[{name: ctr, label: click, min_auc: 0.99}, '
                       '{name: ctcvr, label: purchase}]').check()
    return run, serving, pushed_before


def test_a_task_below_its_floor_stops_the_push(refused_run):
    run, serving, pushed_before = refused_run
    ctr, ctcvr = run.summary['tasks']['ctr'], run.summary['tasks']['ctcvr']
    assert not ctr['verdict']['blessed'] and ctcvr['verdict']['blessed']
    failure = next(f for f in ctr['verdict']['failures'] if f['slice'] == 'Overall')
    assert failure['metric'] == 'auc' and not failure['is_change']
    assert failure['threshold']['valueThreshold']['lowerBound'] == 0.99
    assert failure['value'] == pytest.approx(ctr['metrics']['auc'])
    assert run.summary['pushed_model'] is None
    assert 'nothing pushed' in run.stdout and 'ctr: auc' in run.stdout
    assert sorted(os.listdir(serving)) == pushed_before


def test_changing_only_a_gate_keeps_transform_cached(refused_run):
    run, _, _ = refused_run
    states = run.states()
    assert states['Transform'] == 'CACHED' and states['CsvExampleGen'] == 'CACHED'
    assert states['Trainer'] == 'COMPLETE'
