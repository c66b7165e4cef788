"""The per-task dashboards, from real pipeline runs, looked at in a real browser; and refusal of a
broken candidate, end to end."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from components import dashboard
from conftest import PROJECT_DIR
from pipeline.config import PipelineConfig

TASKS = PipelineConfig().task_names
HEADINGS = ('Metrics overall', 'Metrics per slice', 'ROC, precision-recall and calibration')


def _chromium():
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError('Chromium is not installed (Debian: apt-get install -y chromium); '
                         '.ci/run installs it')


def _browse(page, tmp_path, action):
    """Runs headless Chromium on a page from disk: `action` 'screenshot' returns the PNG as an
    RGB array, 'dump-dom' the DOM after rendering."""
    args = [_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
            '--window-size=1400,1200', f'--user-data-dir={tmp_path / "profile"}']
    if action == 'screenshot':
        out = tmp_path / (os.path.basename(page) + '.png')
        subprocess.run(args + [f'--screenshot={out}', f'file://{page}'], check=True,
                       capture_output=True, timeout=120)
        return np.asarray(Image.open(out).convert('RGB')), str(out)
    process = subprocess.run(args + ['--dump-dom', f'file://{page}'], check=True,
                             capture_output=True, text=True, timeout=120)
    return process.stdout


def _overall_row(page_html, metric):
    table = re.search(r'<table id="overall">(.*?)</table>', page_html, re.S).group(1)
    return re.search(rf'<tr><td class="name">{metric}</td>(.*?)</tr>', table, re.S).group(1)


@pytest.fixture(scope='module')
def first_index(default_runs):
    first, _ = default_runs
    return first.summary['dashboard']


def test_pipeline_writes_a_page_per_task_into_the_pipeline_root(default_runs, first_index):
    first, _ = default_runs
    assert first_index.startswith(first.summary['paths']['pipeline_root'])
    assert 'dashboards:' in first.stdout and first_index in first.stdout
    directory = os.path.dirname(first_index)
    assert sorted(os.listdir(directory)) == sorted(['index.html'] + [f'{t}.html' for t in TASKS])


def test_pages_are_self_contained(first_index):
    for name in os.listdir(os.path.dirname(first_index)):
        with open(os.path.join(os.path.dirname(first_index), name)) as f:
            text = f.read()
        assert '<script' not in text and '<link' not in text
        assert not re.search(r'(src|href)="(https?:)?//', text), name


def test_task_page_has_metrics_slices_and_plots(default_runs, first_index):
    first, _ = default_runs
    with open(os.path.join(os.path.dirname(first_index), 'ctr.html')) as f:
        text = f.read()
    for heading in HEADINGS:
        assert f'<h2>{heading}</h2>' in text
    auc = first.summary['tasks']['ctr']['metrics']['auc']
    assert f'{auc:.4f}' in _overall_row(text, 'auc')
    for device in ('android', 'ios', 'pc'):
        assert f'device:{device}' in text
    assert text.count('<svg') == 1 and 'ROC curve' in text and 'Calibration' in text
    for task in TASKS:
        if task != 'ctr':
            assert f'href="{task}.html"' in text
    assert 'href="index.html#gate-weights"' in text


def test_index_holds_the_gate_chart_and_links_every_task(first_index):
    with open(first_index) as f:
        text = f.read()
    assert 'id="gate-weights"' in text and 'src="data:image/png;base64,' in text
    for task in TASKS:
        assert f'href="{task}.html"' in text


def test_chromium_renders_the_plots(first_index, tmp_path):
    page = os.path.join(os.path.dirname(first_index), 'ctr.html')
    dom = _browse(page, tmp_path, 'dump-dom')
    for heading in HEADINGS:
        assert heading in dom
    pixels, path = _browse(page, tmp_path, 'screenshot')
    print('screenshot:', path)
    not_white = (pixels < 240).any(axis=2)
    assert not_white.mean() > 0.05, 'the page rendered (almost) blank'
    # The candidate's curves are drawn in blue (#1f77b4).
    blue = (np.abs(pixels.astype(int) - [31, 119, 180]).sum(axis=2) < 60)
    assert blue.sum() > 500


def test_command_renders_a_past_run(default_runs, tmp_path):
    first, _ = default_runs
    root = first.summary['paths']['pipeline_root']
    process = subprocess.run(
        [sys.executable, '-m', 'components.dashboard', '--pipeline-root', root, '--run', 'latest',
         '--out', str(tmp_path / 'pages')], capture_output=True, text=True, cwd=PROJECT_DIR,
        check=True)
    assert process.stdout.strip() == str(tmp_path / 'pages' / 'index.html')
    assert sorted(os.listdir(tmp_path / 'pages')) == sorted(
        ['index.html'] + [f'{t}.html' for t in TASKS])
    runs = dashboard.gate_runs(root)
    unknown = subprocess.run(
        [sys.executable, '-m', 'components.dashboard', '--pipeline-root', root, '--run', 'nope'],
        capture_output=True, text=True, cwd=PROJECT_DIR)
    assert unknown.returncode == 1
    assert f"no run 'nope'" in unknown.stderr and runs[0] in unknown.stderr


def test_notebook_view_opens_tfmas_widget(default_runs):
    first, _ = default_runs
    view = dashboard.notebook_view(first.summary['tasks']['ctr']['evaluation'], 'device')
    assert type(view).__name__ == 'SlicingMetricsViewer'


def test_broken_candidate_is_refused_and_nothing_is_pushed(broken_candidate_run):
    run, serving, pushed_before = broken_candidate_run
    assert run.states()['Trainer'] == 'COMPLETE'
    ctcvr = run.summary['tasks']['ctcvr']
    assert not ctcvr['verdict']['blessed']
    failed_metrics = {(f['metric'], f['slice']) for f in ctcvr['verdict']['failures']}
    assert ('auc', 'Overall') in failed_metrics, ctcvr['verdict']
    assert run.summary['pushed_model'] is None
    assert 'nothing pushed' in run.stdout
    assert sorted(os.listdir(serving)) == pushed_before


def test_refused_task_page_shows_the_failing_metric_in_red(broken_candidate_run, tmp_path):
    run, _, _ = broken_candidate_run
    page = os.path.join(os.path.dirname(run.summary['dashboard']), 'ctcvr.html')
    with open(page) as f:
        text = f.read()
    assert 'class="verdict refused"' in text and 'auc' in text
    assert 'class="fail"' in _overall_row(text, 'auc')
    # Judged against the pushed model: the baseline's values and the differences are shown.
    assert '<th>baseline</th><th>difference</th>' in text
    pixels, path = _browse(page, tmp_path, 'screenshot')
    print('screenshot:', path)
    red = (np.abs(pixels.astype(int) - [217, 48, 37]).sum(axis=2) < 60)  # #d93025
    assert red.sum() > 50
