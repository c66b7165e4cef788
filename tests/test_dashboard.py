"""The per-task dashboards, rendered from hand-built evaluation results and looked at in a real
browser. Pages from real pipeline runs are checked in test_pipeline_e2e.py and test_faults.py."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from components import dashboard
from components.blessing_gate import decide
from trainer_module.run import write_gate_report
from trainer_module.settings import GATE_REPORT_DIR

TASKS = ('ctr', 'ctcvr')
HEADINGS = ('Metrics overall', 'Metrics per slice', 'ROC, precision-recall and calibration')
AUC = {'ctr': 0.7123, 'ctcvr': 0.6012}
BASELINE_AUC = 0.7311
# ctcvr is worse than the serving model by more than its max_decrease.
CHANGE_FAILURE = {'slice': 'Overall', 'metric': 'auc', 'is_change': True, 'value': -0.1299,
                  'threshold': {'changeThreshold': {'absolute': -0.01}}, 'message': ''}


def _evaluation(task):
    """What an Evaluator writes for `task`, against a baseline: metrics overall and for two device
    slices, the overall curves."""
    def values(auc):
        return {'auc': {'candidate': auc, 'baseline': BASELINE_AUC, 'difference': auc - BASELINE_AUC},
                'example_count': {'candidate': 400.0, 'baseline': 400.0},
                'mean_label': {'candidate': 0.2, 'baseline': 0.2},
                'calibration': {'candidate': 1.04, 'baseline': 0.98}}
    thresholds = np.linspace(0, 1, 11)
    curves = {role: {'roc': (list(thresholds), list(np.sqrt(thresholds))),
                     'pr': (list(thresholds), list(1 - 0.7 * thresholds)),
                     'calibration': [(0.1, 0.08, 200.0), (0.3, 0.35, 150.0), (0.6, 0.5, 50.0)]}
              for role in ('candidate', 'baseline')}
    metrics = {dashboard.OVERALL: values(AUC[task]), 'device:ios': values(AUC[task] - 0.05),
               'device:android': values(AUC[task] + 0.03)}
    return dashboard.TaskEvaluation(f'/evaluations/{task}', task, task, {
        'candidate': 'candidate', 'baseline': 'baseline'}, metrics, curves)


@pytest.fixture(scope='module')
def pages(tmp_path_factory):
    """{page name: path} of the pages for a model that ctr blessed and ctcvr refused."""
    model_uri = tmp_path_factory.mktemp('model')
    write_gate_report({'examples': 400, 'gates': {'ctr': [0.5, 0.3, 0.2], 'ctcvr': [0.2, 0.3, 0.5]}},
                      str(model_uri / GATE_REPORT_DIR))
    blessed, verdicts = decide(
        list(TASKS), {'ctr': {'blessed': True, 'failures': []},
                      'ctcvr': {'blessed': False, 'failures': [CHANGE_FAILURE]}},
        {task: {'auc': AUC[task], 'mean_label': 0.2} for task in TASKS})
    out = tmp_path_factory.mktemp('pages')
    index = dashboard.write_pages(verdicts, {task: _evaluation(task) for task in TASKS},
                                  str(model_uri), blessed, '7', str(out))
    assert index == str(out / 'index.html')
    return {name: str(out / name) for name in os.listdir(out)}


def _read(path):
    with open(path) as f:
        return f.read()


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
            '--disable-background-networking', '--disable-component-update', '--no-first-run',
            '--window-size=1400,1200', f'--user-data-dir={tmp_path / "profile"}']
    if action == 'screenshot':
        out = tmp_path / (os.path.basename(page) + '.png')
        subprocess.run(args + [f'--screenshot={out}', f'file://{page}'], check=True,
                       capture_output=True, timeout=120)
        return np.asarray(Image.open(out).convert('RGB')), str(out)
    process = subprocess.run(args + ['--dump-dom', f'file://{page}'], check=True,
                             capture_output=True, text=True, timeout=120)
    return process.stdout


def overall_row(page_html, metric):
    """The cells of `metric`'s row in a task page's overall table."""
    table = re.search(r'<table id="overall">(.*?)</table>', page_html, re.S).group(1)
    return re.search(rf'<tr><td class="name">{metric}</td>(.*?)</tr>', table, re.S).group(1)


def test_a_page_per_task_and_an_index(pages):
    assert sorted(pages) == sorted(['index.html'] + [f'{t}.html' for t in TASKS])


def test_pages_are_self_contained(pages):
    for name, path in pages.items():
        text = _read(path)
        assert '<script' not in text and '<link' not in text
        assert not re.search(r'(src|href)="(https?:)?//', text), name


def test_task_page_has_metrics_slices_and_plots(pages):
    text = _read(pages['ctr.html'])
    for heading in HEADINGS:
        assert f'<h2>{heading}</h2>' in text
    row = overall_row(text, 'auc')
    assert '0.7123' in row and f'{BASELINE_AUC:.4f}' in row and '-0.0188' in row
    assert '<td>400</td>' in overall_row(text, 'example_count')
    for device in ('android', 'ios'):
        assert f'device:{device}' in text
    assert text.count('<svg') == 1 and 'ROC curve' in text and 'Calibration' in text
    assert 'href="ctcvr.html"' in text and 'href="index.html#gate-weights"' in text
    assert 'class="verdict blessed"' in text


def test_refused_task_page_shows_the_failing_metric_in_red(pages):
    text = _read(pages['ctcvr.html'])
    assert 'class="verdict refused"' in text
    assert 'auc change = -0.1299 on Overall' in text
    # The failing bound is a change: the difference cell is the red one.
    assert re.search(r'<td class="fail">-0\.1299</td>', overall_row(text, 'auc'))
    assert '<th>baseline</th><th>difference</th>' in text


def test_index_holds_the_gate_chart_and_every_tasks_verdict(pages):
    text = _read(pages['index.html'])
    assert 'id="gate-weights"' in text and 'src="data:image/png;base64,' in text
    for task in TASKS:
        assert f'href="{task}.html"' in text
    assert 'class="verdict refused"' in text and 'refused: auc change' in text


def test_a_metric_that_is_not_finite_shows_as_not_available():
    assert dashboard._format(float('nan')) == 'n/a'  # pylint: disable=protected-access
    assert dashboard._format(40060.0) == '40,060'  # pylint: disable=protected-access


def test_chromium_renders_the_plots_and_the_refusal(pages, tmp_path):
    dom = _browse(pages['ctr.html'], tmp_path, 'dump-dom')
    for heading in HEADINGS:
        assert heading in dom
    pixels, path = _browse(pages['ctr.html'], tmp_path, 'screenshot')
    print('screenshot:', path)
    not_white = (pixels < 240).any(axis=2)
    assert not_white.mean() > 0.05, 'the page rendered (almost) blank'
    # The candidate's curves are drawn in blue (#1f77b4).
    blue = (np.abs(pixels.astype(int) - [31, 119, 180]).sum(axis=2) < 60)
    assert blue.sum() > 500
    pixels, path = _browse(pages['ctcvr.html'], tmp_path, 'screenshot')
    print('screenshot:', path)
    red = (np.abs(pixels.astype(int) - [217, 48, 37]).sum(axis=2) < 60)  # #d93025
    assert red.sum() > 50
