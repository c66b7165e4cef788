"""Continuous training end to end: three days of generated rows by span, run as a team runs them.

- `--span 2`: span 1, which no run read, is read first (its ExampleGen, statistics and checks);
  the Trainer learns from it, the Evaluators judge on every row of span 2, and nothing serves
  yet, so the Trainer starts cold;
- the newest span (3), killed while it trains and run again: only its ExampleGen runs, once;
  the Trainer learns from spans 1 and 2 and starts warm from span 2's model, with the embedding
  rows of the tokens it knew carried over, and span 3 pushes one model;
- `--span 2` again without --backfill, and a span that is not there: refused, naming them.

That the same span again resolves the same base model (so that it comes from the cache and pushes
nothing) is test_span_window.py's, on the resolver itself; the flat layout's rerun is
test_pipeline_e2e.py's."""

import json
import os
import re
import sqlite3

import numpy as np
import pytest
import tensorflow as tf

from pipeline.datasets import ecommerce
from pipeline.run_report import sqlite_store

from helpers import history_rows, kill_when, run_pipeline

pytestmark = pytest.mark.e2e

ROWS_PER_SPAN = 700
# No drift bounds: 70 eval rows of a span drift from the last by chance alone.
SPAN_RUN = ['--set', 'csv_pattern=span-{SPAN}/*.csv', '--set', 'training.window_spans=2',
            '--set', 'drift=[]',
            '--set', 'training.warm_start=true', '--epochs', '3', '--batch-size', '64']


@pytest.fixture(scope='module')
def days(tmp_path_factory):
    """Three spans of rows from one generator (seeds 21 to 23): (data dir, output dir)."""
    root = tmp_path_factory.mktemp('days')
    for span in (1, 2, 3):
        ecommerce.write(str(root / 'data' / f'span-{span}'), rows=ROWS_PER_SPAN, seed=20 + span)
    return str(root / 'data'), str(root / 'out')


@pytest.fixture(scope='module')
def runs(days):
    data, output = days
    first = run_pipeline(output, '--data', data, *SPAN_RUN, '--span', '2').check()
    killed = kill_when(output, ['--data', data, *SPAN_RUN], lambda line: 'Trainer step' in line)
    assert 'Judging on span 3, training on span 1 to span 2' in killed, killed
    newest = run_pipeline(output, '--data', data, *SPAN_RUN).check()
    return first, newest


def _examples_by_span(output):
    store = sqlite_store(os.path.join(output, 'metadata.sqlite'))
    return sorted(a.custom_properties['span'].int_value
                  for a in store.get_artifacts_by_type('Examples')
                  if 'span' in a.custom_properties)


def _warm_start(run):
    return json.loads(run.summary['trained_model']['properties']['warm_start'])


def test_a_span_judged_on_all_its_rows_after_the_span_before_it_was_read(runs):
    first, _ = runs
    assert first.summary['spans'] == {'span': 2, 'window': [1], 'read_first': [1],
                                      'judged_on': 'span 2', 'trained_on': ['span 1']}
    assert '(reading first, as no run read them: span 1)' in first.stdout
    for task in ('ctr', 'ctcvr'):
        assert first.summary['tasks'][task]['metrics']['example_count'] == ROWS_PER_SPAN
    assert not _warm_start(first)['warm']
    assert 'warm start:     none, trained from scratch: no base model' in first.stdout
    assert first.summary['pushed_model']


def test_the_next_span_reads_only_itself_and_starts_from_the_serving_model(runs, days):
    first, newest = runs
    assert newest.summary['spans'] == {'span': 3, 'window': [1, 2], 'read_first': [],
                                       'judged_on': 'span 3', 'trained_on': ['span 1', 'span 2']}
    # One Examples artifact per span in the whole store: spans 1 and 2 came from the runs before.
    assert _examples_by_span(days[1]) == [1, 2, 3]
    report = _warm_start(newest)
    first_model = first.summary['trained_model']['uri']
    assert report['warm'] and report['base_model'].startswith(first_model)
    assert newest.summary['trained_model']['properties']['warm_started_from'] == \
        report['base_model']
    # The tokens span 1 and 2 share kept their rows; span 2 brought new users.
    users = report['tables']['user_id']
    assert users['carried'] > 0 and users['new'] > 0 and users['dropped'] == 0
    assert f'warm start:     from {report["base_model"]}' in newest.stdout
    pushed = newest.summary['pushed_model']
    assert pushed and pushed != first.summary['pushed_model']
    # The run killed in training pushed nothing; its rerun read nothing again, and pushed once.
    assert newest.states()['CsvExampleGen'] == 'CACHED'
    assert sorted(os.listdir(os.path.dirname(pushed))) == sorted(
        os.path.basename(model) for model in (first.summary['pushed_model'], pushed))
    # The pushed model still scores what it serves; its provenance names its base.
    with open(os.path.join(pushed, 'assets.extra', 'provenance.json')) as f:
        assert json.load(f)['warm_start']['base_model'] == report['base_model']
    scores = tf.saved_model.load(pushed).signatures['serving_default']
    assert np.isfinite(next(iter(scores(examples=tf.constant([b''])).values())).numpy()).all()


def test_the_history_has_a_row_per_span_and_the_spans_bayes_auc(runs):
    _, newest = runs
    with open(newest.summary['dashboard'].replace('index.html', 'ctr.html')) as f:
        page = f.read()
    # Each row: the gate run, then the span it judged on.
    assert [re.match(r'[^<]*</td><td>([^<]*)</td>', row).group(1)
            for row in history_rows(page)] == ['2', '3']
    # The reference line: the Bayes AUC the generator wrote beside the judged span's rows.
    assert 'Bayes AUC' in page


def test_an_older_span_and_a_missing_one_are_refused_before_any_component(runs, days):
    data, output = days
    runs_before = _pipeline_runs(output)
    older = run_pipeline(output, '--data', data, *SPAN_RUN, '--span', '2')
    assert older.returncode == 1
    assert ('error: --span: span 2 is older than span 3, which the serving model was judged on'
            in older.stderr), older.stderr
    missing = run_pipeline(output, '--data', data, *SPAN_RUN, '--span', '9')
    assert missing.returncode == 1
    assert 'error: data: span 9 is missing: no file matches span-9/*.csv' in missing.stderr
    assert _pipeline_runs(output) == runs_before


def _pipeline_runs(output):
    with sqlite3.connect(os.path.join(output, 'metadata.sqlite')) as db:
        return db.execute("SELECT COUNT(*) FROM Context WHERE type_id = (SELECT id FROM Type "
                          "WHERE name = 'pipeline_run')").fetchone()[0]
