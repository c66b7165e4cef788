"""A user's own CSV of another layout: drafted schema and config, three tasks one of which is a
regression, run end to end through --config without editing Python; its Beam steps on Beam's
multi-processing DirectRunner with 2 workers."""

import glob
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

from conftest import MULTI_PROCESSING, run_pipeline
from pipeline import draft


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
    shared = (rng.random(rows) < 1 / (1 + np.exp(-(appeal - 1.5)))).astype(int)
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
    assert roles == {'country': 'sparse', 'app_version': 'sparse', 'song': 'sparse',
                     'duration_sec': 'dense', 'age': 'dense', 'liked': 'binary_label',
                     'shared': 'binary_label', 'listen_minutes': 'regression_label'}


def test_draft_writes_a_schema_and_a_config_that_loads(drafted):
    root, _ = drafted
    with open(root / 'project' / 'config.yaml') as f:
        config = yaml.safe_load(f)
    assert [t['name'] for t in config['tasks']] == ['liked', 'shared', 'listen_minutes']
    assert [t['type'] for t in config['tasks']] == ['binary', 'binary', 'regression']
    # The regression gate starts at the label's variance: no worse than predicting the mean.
    minutes = pd.read_csv(root / 'data' / 'sessions.csv')['listen_minutes']
    assert config['tasks'][2]['max_mse'] == pytest.approx(minutes.var(), rel=1e-3)
    schema = (root / 'project' / 'schema.pbtxt').read_text()
    assert 'name: "liked"' in schema and 'int_domain' in schema


@pytest.fixture(scope='module')
def layout_run(drafted):
    root, _ = drafted
    return run_pipeline(root / 'outputs', '--config', str(root / 'project' / 'config.yaml'),
                        '--train-steps', '90', '--batch-size', '64',
                        '--set', 'training.steps_per_epoch=15', *MULTI_PROCESSING).check()


@pytest.mark.e2e
def test_beam_steps_run_on_the_multi_processing_direct_runner(layout_run):
    assert set(MULTI_PROCESSING) <= set(layout_run.args)
    # Beam's worker processes report through the job service into the run's log.
    logs = ''
    for path in glob.glob(os.path.join(layout_run.output, 'logs', '*.log')):
        with open(path) as f:
            logs += f.read()
    assert 'local_job_service: Worker' in logs


@pytest.mark.e2e
def test_another_layout_runs_end_to_end(layout_run):
    run = layout_run
    states = run.states()
    assert {'Evaluator.liked', 'Evaluator.shared', 'Evaluator.listen_minutes'} <= set(states)
    assert all(state == 'COMPLETE' for state in states.values()), states
    assert run.summary['tasks']['listen_minutes']['metrics']['mean_squared_error'] >= 0
    for task in ('liked', 'shared'):
        assert run.summary['tasks'][task]['metrics']['auc'] > 0.6, run.summary['tasks'][task]
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
