"""The whole pipeline, run for real (Beam DirectRunner, SQLite MLMD) on 2k generated rows: the
first run, and a second one that changes only gates, slices and drift bounds.

The tests read each run's run_summary.json and artifacts; what a run prints at its end is that
summary's report (checked for every run by helpers.PipelineRun.check, the report's wording in
test_local_runner.py). The progress lines are checked as printed."""

import csv
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import dashboard
from pipeline.config import PROJECT_DIR, PipelineConfig

from helpers import SMALL_TRAINING, SPLIT_DATA, history_rows, overall_row, run_pipeline

pytestmark = pytest.mark.e2e

CONFIG = PipelineConfig()
EXPECTED_NODES = {'CsvExampleGen', 'previous_statistics_resolver', 'StatisticsGen', 'ImportSchemaGen',
                  'ExampleValidator', 'DriftValidator',
                  'AnomalyCheck', 'Transform', 'Trainer', 'latest_blessed_model_resolver',
                  'Evaluator.ctr', 'Evaluator.ctcvr', 'BlessingGate', 'gate_history_resolver',
                  'Dashboard', 'Pusher'}
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
                    feature[name] = tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[value.encode()]))
            examples.append(tf.train.Example(features=tf.train.Features(feature=feature))
                            .SerializeToString())
    return tf.constant(examples)


def _examples(run, split):
    """The tf.Examples ExampleGen wrote into `split`."""
    uri = run.summary['nodes']['CsvExampleGen']['outputs']['examples'][0]['uri']
    records = tf.data.TFRecordDataset(glob.glob(os.path.join(uri, f'Split-{split}', '*')),
                                      compression_type='GZIP')
    return [tf.train.Example.FromString(record.numpy()) for record in records]


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
    assert first_run.summary['pushed_model']


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


def _scores(model, examples):
    outputs = model.signatures['serving_default'](examples=examples)
    return np.concatenate([outputs[task].numpy() for task in CONFIG.task_names], axis=1)


def test_pushed_model_scores_unseen_categories_as_the_oov_id(first_run, small_csv):
    """Every unseen value shares the one OOV id: two different unseen users and items score the
    same, and not as the rows' own (seen) users and items do."""
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    unseen = _scores(model, _raw_examples(
        small_csv, rows=4, replace={'user_id': 'never-seen-user', 'item_id': 'never-seen-item'}))
    other_unseen = _scores(model, _raw_examples(
        small_csv, rows=4, replace={'user_id': 'another-new-user', 'item_id': 'another-new-item'}))
    np.testing.assert_allclose(unseen, other_unseen, atol=1e-6)
    assert np.max(np.abs(unseen - _scores(model, _raw_examples(small_csv, rows=4)))) > 1e-4


def test_pushed_model_scores_a_missing_number_as_its_training_mean(first_run, small_csv):
    """Numbers are optional in the schema: a missing one is the training mean (of log1p where the
    feature has it), as in Transform: the same scores as the rows with that mean written in."""
    model = tf.saved_model.load(first_run.summary['pushed_model'])
    dropped = ('price', 'item_rating')
    means = {}
    for feature in CONFIG.dense_features:
        if feature.name in dropped:
            values = np.array([e.features.feature[feature.name].float_list.value[0]
                               for e in _examples(first_run, 'train')], dtype=np.float64)
            means[feature.name] = (np.expm1(np.log1p(np.maximum(values, 0)).mean())
                                   if feature.log1p else values.mean())
    missing = _scores(model, _raw_examples(small_csv, rows=4, drop=set(dropped)))
    filled = _scores(model, _raw_examples(
        small_csv, rows=4, replace={name: repr(value) for name, value in means.items()}))
    np.testing.assert_allclose(missing, filled, atol=1e-6)
    assert np.max(np.abs(missing - _scores(model, _raw_examples(small_csv, rows=4)))) > 1e-4


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
    # Ids 0 .. size-1 are the vocabulary's; with one OOV bucket, the OOV id is the next one.
    assert CONFIG.num_oov_buckets == 1
    vocabulary_size = tft.TFTransformOutput(first_run.summary['nodes']['Transform']['outputs'][
        'transform_graph'][0]['uri']).vocabulary_size_by_name('user_id')
    assert transformed['user_id'].numpy().tolist() == [vocabulary_size] * 2


def test_gate_report_beside_the_model_and_gate_signature(first_run, small_csv):
    model_uri = first_run.summary['nodes']['Trainer']['outputs']['model'][0]['uri']
    with open(os.path.join(model_uri, 'gate_report', 'gates.json')) as f:
        report = json.load(f)
    assert set(report['gates']) == set(CONFIG.task_names)
    assert report['examples'] == len(_examples(first_run, 'validation'))
    for weights in report['gates'].values():
        assert len(weights) == CONFIG.model.num_experts
        assert sum(weights) == pytest.approx(1.0, abs=1e-4)
    assert os.path.getsize(os.path.join(model_uri, 'gate_report', 'gates.png')) > 1000
    assert 'Trainer mean gate weights per expert' in first_run.stdout
    # Expert use (trainer_module.expert_use), and its warnings in the run summary.
    assert set(report['gate_use']) == set(CONFIG.task_names)
    assert len(report['expert_similarity']) == CONFIG.model.num_experts
    assert first_run.summary['trained_model']['warnings'] == report['warnings']

    model = tf.saved_model.load(first_run.summary['pushed_model'])
    gates = model.signatures['gate_weights'](
        examples=_raw_examples(small_csv, rows=8))
    for task in CONFIG.task_names:
        np.testing.assert_allclose(gates[task].numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_the_eval_split_never_reaches_the_trainer(first_run):
    """Transform analyzes train alone and transforms train and validation, on which the Trainer
    stops early; eval is read by the Evaluators only."""
    nodes = first_run.summary['nodes']
    transformed = nodes['Transform']['outputs']['transformed_examples'][0]['uri']
    assert sorted(os.listdir(transformed)) == ['Split-train', 'Split-validation']
    users = {split: {e.features.feature['user_id'].bytes_list.value[0]
                     for e in _examples(first_run, split)}
             for split in ('train', 'validation', 'eval')}
    assert first_run.summary['tasks']['ctr']['metrics']['example_count'] == len(
        _examples(first_run, 'eval'))
    vocabulary = set(tft.TFTransformOutput(nodes['Transform']['outputs']['transform_graph'][0][
        'uri']).vocabulary_by_name('user_id'))
    held_out = (users['validation'] | users['eval']) - users['train']
    assert held_out and not held_out & vocabulary
    assert users['train'] == vocabulary


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


def test_a_gate_slice_or_drift_change_keeps_everything_upstream_cached(default_runs):
    _, second = default_runs
    states = second.states()
    for node in ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Trainer'):
        assert states[node] == 'CACHED', states
    for node in ('DriftValidator', 'Evaluator.ctr', 'Evaluator.ctcvr', 'BlessingGate'):
        assert states[node] == 'COMPLETE', states
    assert 'Transform reused from cache' in second.stdout
    assert 'Trainer reused from cache' in second.stdout


@pytest.fixture(scope='module')
def unchanged_run(default_runs, small_data):
    """The first run's command again, into the same output, after both default runs: it changes
    nothing that other tests read (no new model, blessing or push)."""
    first, _ = default_runs
    return run_pipeline(first.output, '--data', small_data, *SPLIT_DATA, *SMALL_TRAINING).check()


def test_nothing_new_is_neither_judged_again_nor_pushed(default_runs, unchanged_run):
    first, _ = default_runs
    states = unchanged_run.states()
    for node in ('Transform', 'Trainer', 'Evaluator.ctr', 'Evaluator.ctcvr', 'BlessingGate',
                 'Pusher'):
        assert states[node] == 'CACHED', states
    assert unchanged_run.summary['pushed_model'] is None
    assert unchanged_run.summary['already_serving'] == first.summary['pushed_model']
    assert unchanged_run.serving_before == sorted(os.listdir(first.summary['paths']['serving']))


def test_the_changed_slices_reach_the_evaluators(default_runs):
    _, second = default_runs
    with open(os.path.join(os.path.dirname(second.summary['dashboard']), 'ctr.html')) as f:
        page = f.read()
    assert 'user_gender:' in page and 'device:' in page


def test_a_task_below_its_floor_stops_the_push(default_runs):
    first, second = default_runs
    ctr, ctcvr = second.summary['tasks']['ctr'], second.summary['tasks']['ctcvr']
    assert not ctr['verdict']['blessed'] and ctcvr['verdict']['blessed']
    failure = next(f for f in ctr['verdict']['failures'] if f['slice'] == 'Overall')
    # Gated on its group AUC (the users of the eval split with both classes), by name.
    assert failure['metric'] == 'gauc' and not failure['is_change']
    assert failure['threshold']['valueThreshold']['lowerBound'] == 0.99
    assert failure['value'] == pytest.approx(ctr['metrics']['gauc'])
    assert ctr['metrics']['gauc_groups'] >= 1 and 0 < ctr['metrics']['gauc_coverage'] < 1
    assert ctr['verdict']['gate'] == {'metric': 'gauc', 'calibration': None}
    # Not pushed because not blessed (rather than because it already serves).
    assert second.summary['pushed_model'] is None and second.summary['already_serving'] is None
    assert sorted(os.listdir(first.summary['paths']['serving'])) == second.serving_before
    # Each task judged on the whole eval split (400 rows).
    assert all(result['metrics']['example_count'] == 400
               for result in second.summary['tasks'].values())


def test_pipeline_writes_a_page_per_task_into_the_pipeline_root(default_runs):
    first, _ = default_runs
    index = first.summary['dashboard']
    assert index.startswith(first.summary['paths']['pipeline_root'])
    assert sorted(os.listdir(os.path.dirname(index))) == sorted(
        ['index.html'] + [f'{t}.html' for t in CONFIG.task_names])


def test_task_page_shows_what_tfma_computed(default_runs):
    first, _ = default_runs
    with open(os.path.join(os.path.dirname(first.summary['dashboard']), 'ctr.html')) as f:
        text = f.read()
    auc = first.summary['tasks']['ctr']['metrics']['auc']
    assert f'{auc:.4f}' in overall_row(text, 'auc')
    for device in ('android', 'ios', 'pc'):
        assert f'device:{device}' in text
    assert text.count('<svg') == 1 and 'ROC curve' in text and 'Calibration' in text
    with open(first.summary['dashboard']) as f:
        assert 'src="data:image/png;base64,' in f.read()


def test_command_renders_a_past_run(default_runs, tmp_path):
    first, _ = default_runs
    root = first.summary['paths']['pipeline_root']
    process = subprocess.run(
        [sys.executable, '-m', 'components.dashboard', '--pipeline-root', root, '--run', 'latest',
         '--out', str(tmp_path / 'pages')], capture_output=True, text=True, cwd=PROJECT_DIR,
        check=True)
    assert process.stdout.strip() == str(tmp_path / 'pages' / 'index.html')
    assert sorted(os.listdir(tmp_path / 'pages')) == sorted(
        ['index.html'] + [f'{t}.html' for t in CONFIG.task_names])
    runs = dashboard.gate_runs(root)
    unknown = subprocess.run(
        [sys.executable, '-m', 'components.dashboard', '--pipeline-root', root, '--run', 'nope'],
        capture_output=True, text=True, cwd=PROJECT_DIR)
    assert unknown.returncode == 1
    assert "no run 'nope'" in unknown.stderr and runs[0] in unknown.stderr


def test_notebook_view_opens_tfmas_widget(default_runs):
    first, _ = default_runs
    view = dashboard.notebook_view(first.summary['tasks']['ctr']['evaluation'], 'device')
    assert type(view).__name__ == 'SlicingMetricsViewer'


def test_history_shows_both_runs_the_serving_model_and_the_bayes_auc(default_runs, small_data):
    """From ML Metadata: the first run blessed the model; the second judged the same (cached)
    model again, with no baseline (never the candidate itself), and refused it for ctr's floor;
    that model is still the one serving."""
    first, second = default_runs
    with open(os.path.join(os.path.dirname(second.summary['dashboard']), 'ctr.html')) as f:
        text = f.read()
    rows = history_rows(text)
    assert len(rows) == 2
    assert '<td class="name">blessed</td>' in rows[0]
    assert '<td class="name fail">refused: gauc = ' in rows[1]
    assert all(row.endswith('<td class="name">serving</td>') for row in rows)
    # time, model, the gated GAUC, its change from the baseline (none: no baseline), ...
    cells = re.findall(r'<td[^>]*>(.*?)</td>', rows[1])
    assert cells[2].startswith('0.') and cells[3] == '', cells
    with open(os.path.join(small_data, 'eval', 'bayes_auc.json')) as f:
        bayes = json.load(f)['bayes_auc']['ctr']['expected']
    plot = re.search(r'<div id="history-plot">(.*?)</div>', text, re.S).group(1)
    assert f'Bayes AUC {bayes:.3f}' in plot
    with open(os.path.join(os.path.dirname(first.summary['dashboard']), 'ctr.html')) as f:
        first_page = f.read()
    assert len(history_rows(first_page)) == 1 and 'history-plot' not in first_page
