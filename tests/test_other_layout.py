"""A user's own CSV of another layout: drafted schema and config, three tasks one of which is a
regression, run end to end through --config without editing Python, with PLE and a task on the
sample space of another (shares happen after likes); then again into a fresh output, where it must
train the same model and reach the same verdicts."""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml
from tfx.utils import path_utils

from pipeline import draft
from trainer_module.settings import GATE_REPORT_DIR, GATE_REPORT_FILE, PROVENANCE_FILE

from helpers import run_pipeline


def _music_csv(path, rows=2000, seed=5):
    """Listening sessions: who liked, shared, and how long they listened."""
    rng = np.random.default_rng(seed)
    country = rng.choice(['de', 'fr', 'jp', 'us', 'br'], rows)
    app_version = rng.choice([3, 4, 5, 6], rows)
    song = rng.integers(0, 300, rows)
    song_appeal = rng.normal(0, 1, 300)[song]
    duration = rng.uniform(120, 420, rows).round(1)
    age = rng.integers(16, 80, rows)
    appeal = (1.5 * (country == 'jp') - 1.0 * (country == 'us') + 0.05 * (age - 48)
              + 0.6 * (app_version - 4.5) + 0.5 * song_appeal)
    liked = (rng.random(rows) < 1 / (1 + np.exp(-(appeal - 0.5)))).astype(int)
    # A song is shared only after it was liked.
    shared = liked * (rng.random(rows) < 1 / (1 + np.exp(-(appeal - 0.5)))).astype(int)
    minutes = np.clip(duration / 60 * (0.5 + 0.2 * appeal) + rng.normal(0, 0.3, rows), 0, None)
    pd.DataFrame({'country': country, 'app_version': app_version,
                  'song': [f'song-{s}' for s in song], 'duration_sec': duration, 'age': age,
                  'liked': liked, 'shared': shared, 'listen_minutes': minutes.round(2)}
                 ).to_csv(path, index=False)


@pytest.fixture(scope='module')
def drafted(tmp_path_factory):
    root = tmp_path_factory.mktemp('music')
    os.makedirs(root / 'data')
    _music_csv(root / 'data' / 'sessions.csv')
    roles = draft.draft(str(root / 'data' / 'sessions.csv'), str(root / 'project'),
                        labels=['liked', 'shared', 'listen_minutes'])
    return root, roles


def test_draft_guesses_roles(drafted):
    _, roles = drafted
    assert {name: role for name, (role, _, _) in roles.items()} == {
        'country': 'sparse', 'app_version': 'sparse', 'song': 'sparse', 'duration_sec': 'dense',
        'age': 'dense', 'liked': 'binary_label', 'shared': 'binary_label',
        'listen_minutes': 'regression_label'}


def test_draft_writes_a_schema_and_a_config_that_loads(drafted):
    root, _ = drafted
    with open(root / 'project' / 'config.yaml') as f:
        config = yaml.safe_load(f)
    assert [t['name'] for t in config['tasks']] == ['liked', 'shared', 'listen_minutes']
    assert [t['type'] for t in config['tasks']] == ['binary', 'binary', 'regression']
    # The regression gate starts at the label's variance: no worse than predicting the mean.
    minutes = pd.read_csv(root / 'data' / 'sessions.csv')['listen_minutes']
    assert config['tasks'][2]['gate']['max'] == pytest.approx(minutes.var(), rel=1e-3)
    schema = (root / 'project' / 'schema.pbtxt').read_text()
    assert 'name: "liked"' in schema and 'int_domain' in schema


def _edited_config(root) -> str:
    """The drafted config as its user edits it: `shared` trained and judged on the liked
    sessions, the model a PLE."""
    path = root / 'project' / 'edited.yaml'
    if not path.exists():
        with open(root / 'project' / 'config.yaml') as f:
            config = yaml.safe_load(f)
        config['tasks'][1]['given'] = 'liked'
        config['model']['architecture'] = 'ple'
        path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture(scope='module')
def layout_run(drafted):
    root, _ = drafted
    return run_pipeline(root / 'outputs', '--config', _edited_config(root),
                        '--train-steps', '90', '--batch-size', '64',
                        '--set', 'training.max_memory_mb=0').check()


@pytest.mark.e2e
def test_another_layout_runs_end_to_end(drafted, layout_run):
    root, _ = drafted
    run = layout_run
    states = run.states()
    # max_memory_mb=0: the training split streams from its files, and the model still learns.
    assert 'training rows streamed from disk' in run.stdout
    assert {'Evaluator.liked', 'Evaluator.shared', 'Evaluator.listen_minutes'} <= set(states)
    assert all(state == 'COMPLETE' for state in states.values()), states
    # Below the label's variance (what predicting the mean scores): the regression tower learned.
    minutes = pd.read_csv(root / 'data' / 'sessions.csv')['listen_minutes']
    assert 0 < run.summary['tasks']['listen_minutes']['metrics']['mean_squared_error'] \
        < minutes.var()
    for task in ('liked', 'shared'):
        assert run.summary['tasks'][task]['metrics']['auc'] > 0.6, run.summary['tasks'][task]
    # `shared` is judged on the liked sessions of the eval split alone, and its page says so.
    counts = {task: result['metrics']['example_count']
              for task, result in run.summary['tasks'].items()}
    assert 0 < counts['shared'] < counts['liked'] == counts['listen_minutes']
    with open(os.path.join(os.path.dirname(run.summary['dashboard']), 'shared.html')) as f:
        assert 'only on the rows where <code>liked</code> is 1' in f.read()
    # A PLE: every level's gates in the gate report (trainer_module/gate_report.py).
    with open(os.path.join(run.summary['trained_model']['uri'], GATE_REPORT_DIR,
                           GATE_REPORT_FILE)) as f:
        report = json.load(f)
    assert len(report['gates']) > len(run.summary['tasks']), sorted(report['gates'])
    model = tf.saved_model.load(run.summary['pushed_model'])
    example = tf.train.Example()
    for name, value in (('country', b'jp'), ('song', b'song-1')):
        example.features.feature[name].bytes_list.value.append(value)
    example.features.feature['app_version'].int64_list.value.append(4)
    example.features.feature['age'].int64_list.value.append(30)
    example.features.feature['duration_sec'].float_list.value.append(200.0)
    scores = model.signatures['serving_default'](
        examples=tf.constant([example.SerializeToString()]))
    assert set(scores) == {'liked', 'shared', 'listen_minutes'}
    assert 0 <= float(scores['liked'][0, 0]) <= 1
    assert np.isfinite(float(scores['listen_minutes'][0, 0]))


@pytest.fixture(scope='module')
def layout_rerun(drafted, layout_run):
    """The same data and config again, into a fresh output."""
    root, _ = drafted
    return run_pipeline(root / 'outputs-again', '--config', _edited_config(root),
                        '--train-steps', '90', '--batch-size', '64',
                        '--set', 'training.max_memory_mb=0').check()


def _weights(run):
    """Every variable the SavedModel's checkpoint holds, by its checkpoint key: read from the
    checkpoint itself, since a model saved without Keras traces restores no `variables` list."""
    saved = path_utils.serving_model_path(run.summary['trained_model']['uri'])
    reader = tf.train.load_checkpoint(os.path.join(saved, 'variables', 'variables'))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if not key.startswith('_CHECKPOINTABLE_OBJECT_GRAPH')}


@pytest.mark.e2e
def test_the_same_data_and_config_train_the_same_model(layout_run, layout_rerun):
    first, again = _weights(layout_run), _weights(layout_rerun)
    assert sorted(first) == sorted(again)
    for name, values in first.items():
        np.testing.assert_array_equal(values, again[name], err_msg=name)
    for task, result in layout_run.summary['tasks'].items():
        assert result['metrics'] == layout_rerun.summary['tasks'][task]['metrics'], task
        assert result['verdict'] == layout_rerun.summary['tasks'][task]['verdict'], task


@pytest.mark.e2e
def test_what_decided_the_model_is_recorded_with_it(layout_run, layout_rerun):
    properties = layout_run.summary['trained_model']['properties']
    assert properties['seed'] == 1024
    assert re.fullmatch('[0-9a-f]{64}', properties['train_data_fingerprint'])
    for key in ('seed', 'train_data_fingerprint', 'validation_data_fingerprint', 'trainer_settings',
                'versions'):
        assert properties[key] == layout_rerun.summary['trained_model']['properties'][key], key
    settings = json.loads(properties['trainer_settings'])
    assert settings['training']['train_steps'] == 90 and settings['model']['seed'] == 1024
    steps = settings['steps']
    assert 0 < steps['kept'] <= steps['run'] <= steps['planned'] <= 90
    assert [task['name'] for task in settings['tasks']] == ['liked', 'shared', 'listen_minutes']
    assert json.loads(properties['versions'])['tensorflow'] == tf.__version__
    # The same record inside the pushed model, which travels with every copy of it.
    with open(os.path.join(layout_run.summary['pushed_model'], PROVENANCE_FILE)) as f:
        assert json.load(f)['data']['train'] == properties['train_data_fingerprint']
