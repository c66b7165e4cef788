"""The per-task dashboards, rendered from hand-built evaluation results and looked at in a real
browser, and from a small real Evaluator output (tests/testdata/ecommerce_evaluation/) read with the
dashboard's own reader. Pages from real pipeline runs are checked in test_pipeline_e2e.py and
test_faults.py."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from PIL import Image

from components import dashboard
from components.blessing_gate import decide, task_verdict
from components.dashboard.pages import format_value
from trainer_module.gate_report import write_gate_report
from trainer_module.settings import GATE_REPORT_DIR

from helpers import history_rows, overall_row

TASKS = ('ctr', 'ctcvr')
HEADINGS = ('Metrics overall', 'Metrics per slice', 'ROC, precision-recall and calibration')
AUC = {'ctr': 0.7123, 'ctcvr': 0.6012}
BASELINE_AUC = 0.7311
# ctcvr is worse than the serving model by more than its max_decrease.
CHANGE_FAILURE = {'slice': 'Overall', 'metric': 'auc', 'is_change': True, 'value': -0.1299,
                  'threshold': {'changeThreshold': {'absolute': -0.01}}, 'message': ''}
# What the Evaluator wrote for ctr, a candidate against a baseline (its README says how).
REAL_EVALUATION = os.path.join(os.path.dirname(__file__), 'testdata', 'ecommerce_evaluation',
                               'evaluation')


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


def _browse(page, tmp_path, action, height=1200):
    """Runs headless Chromium on a page from disk: `action` 'screenshot' returns the PNG (of the
    top `height` pixels) as an RGB array, 'dump-dom' the DOM after rendering."""
    args = [_chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
            '--disable-background-networking', '--disable-component-update', '--no-first-run',
            f'--window-size=1400,{height}', f'--user-data-dir={tmp_path / "profile"}']
    if action == 'screenshot':
        out = tmp_path / (os.path.basename(page) + '.png')
        subprocess.run(args + [f'--screenshot={out}', f'file://{page}'], check=True,
                       capture_output=True, timeout=120)
        return np.asarray(Image.open(out).convert('RGB')), str(out)
    process = subprocess.run(args + ['--dump-dom', f'file://{page}'], check=True,
                             capture_output=True, text=True, timeout=120)
    return process.stdout


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
    assert format_value(float('nan')) == 'n/a'
    assert format_value(40060.0) == '40,060'


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


def _history_entry(run, model, blessed, auc, change=None, verdict='blessed'):
    values = {'auc': {'value': auc, 'lower': auc - 0.04, 'upper': auc + 0.04},
              'calibration': {'value': 0.95, 'lower': 0.85, 'upper': 1.05}}
    if change is not None:
        values['auc change'] = {'value': change, 'lower': change - 0.03, 'upper': change + 0.03}
    return {'run': run, 'time': 1_790_000_000_000, 'model': f'/root/Trainer/model/{model}',
            'model_id': model, 'blessed': blessed, 'serving': False,
            'tasks': {'ctr': {'blessed': blessed, 'verdict': verdict, 'values': values,
                              'gated': 'auc', 'calibration': None}}}


@pytest.fixture(scope='module')
def history_page(tmp_path_factory):
    """The ctr page of a fourth run: models 10 and 25 were blessed, 25 is serving; run 44 (model
    25 again) and this run (model 31) were refused."""
    entries = [_history_entry('13', 10, True, 0.70),
               _history_entry('28', 25, True, 0.72, change=0.02),
               _history_entry('44', 25, False, 0.72, change=0.0,
                              verdict='refused: auc = 0.72 on Overall'),
               _history_entry('52', 31, False, 0.51, change=-0.21,
                              verdict='refused: auc change = -0.21 on Overall')]
    for entry in entries:  # what history_entries() derives from the blessings
        entry['serving'] = entry['model_id'] == 25
    section = dashboard.history_section('ctr', entries, reference_auc=0.765)
    page = dashboard.render_task(_evaluation('ctr'), {'blessed': False, 'failures': []},
                                 list(TASKS), '52', section)
    path = tmp_path_factory.mktemp('history') / 'ctr.html'
    path.write_text(page)
    return str(path)


def test_history_lists_every_run_with_intervals_verdict_and_the_serving_model(history_page):
    text = _read(history_page)
    assert '<h2 id="history">History</h2>' in text
    rows = history_rows(text)
    assert [row.split('</td>')[0] for row in rows] == ['13', '28', '44', '52']
    assert '0.7200 <span class="muted">[0.6800, 0.7600]</span>' in rows[1]
    assert '-0.2100 <span class="muted">[-0.2400, -0.1800]</span>' in rows[3]
    assert '0.9500 <span class="muted">[0.8500, 1.0500]</span>' in rows[0]
    # The serving model is 25: blessed in run 28, judged again (and refused) in run 44.
    assert [row.endswith('<td class="name">serving</td>') for row in rows] == \
        [False, True, True, False]
    assert '<td class="name fail">refused: auc change = -0.21 on Overall</td>' in rows[3]


def test_history_draws_the_trend_with_the_bayes_auc(history_page):
    text = _read(history_page)
    plot = re.search(r'<div id="history-plot">(.*?)</div>', text, re.S).group(1)
    assert plot.startswith('<svg') and 'Bayes AUC 0.765' in plot
    assert 'ctr: auc per run' in plot and 'ctr: calibration per run' in plot
    assert 'Bayes AUC of the data (0.765)' in text


def test_a_first_run_has_a_history_of_one_and_no_trend():
    section = dashboard.history_section('ctr', [_history_entry('13', 10, True, 0.7)], None)
    assert len(history_rows(section)) == 1 and '<svg' not in section
    assert 'drawn from the second run on' in section and 'Bayes' not in section


def test_chromium_renders_the_history(history_page, tmp_path):
    dom = _browse(history_page, tmp_path, 'dump-dom')
    assert 'History' in dom and 'Bayes AUC 0.765' in dom
    pixels, path = _browse(history_page, tmp_path, 'screenshot', height=2600)
    print('screenshot:', path)
    # Blessed runs are drawn green (#34a853); this page's own verdict is a refusal (red).
    green = (np.abs(pixels.astype(int) - [52, 168, 83]).sum(axis=2) < 60)
    assert green.sum() > 50


def test_a_regression_tasks_history_shows_its_mean_squared_error():
    entry = _history_entry('13', 10, True, 0.7)
    entry['tasks']['ctr']['values'] = {
        'mean_squared_error': {'value': 2.5, 'lower': 2.1, 'upper': 2.9},
        'mean_squared_error change': {'value': 0.1, 'lower': -0.2, 'upper': 0.4}}
    entry['tasks']['ctr']['gated'] = 'mean_squared_error'
    section = dashboard.history_section('ctr', [entry], None)
    assert '<th>mean_squared_error (gated)</th>' in section
    assert '2.5000 <span class="muted">[2.1000, 2.9000]</span>' in section
    assert '+0.1000 <span class="muted">[-0.2000, +0.4000]</span>' in section


@pytest.fixture(scope='module')
def real_page():
    """(the ctr page rendered from the checked-in Evaluator output, as the component reads it, with
    the gate's verdict on it; that evaluation)."""
    evaluation = dashboard.TaskEvaluation.load(REAL_EVALUATION)
    return dashboard.render_task(evaluation, task_verdict(REAL_EVALUATION), ['ctr'], '1'), evaluation


def _tfma_overall(model):
    """TFMA's own reading of the checked-in output: `model`'s overall metrics by name."""
    return tfma.load_eval_result(REAL_EVALUATION, model_name=model).get_metrics_for_slice()


def test_a_page_from_real_tfma_output_shows_the_numbers_tfma_wrote(real_page):
    text, _ = real_page
    candidate, baseline = _tfma_overall('candidate'), _tfma_overall('baseline')
    assert 'Label <code>click</code>; candidate against the latest blessed model' in text
    for metric in ('auc', 'auc_precision_recall', 'binary_crossentropy', 'calibration',
                   'mean_label', 'mean_prediction'):
        cells = re.findall(r'<td[^>]*>(.*?)</td>', overall_row(text, metric))
        assert cells[:3] == [f"{candidate[metric]['doubleValue']:.4f}",
                             f"{baseline[metric]['doubleValue']:.4f}",
                             f"{candidate[metric + '_diff']['doubleValue']:+.4f}"], metric
    count = candidate['example_count']['doubleValue']
    assert re.findall(r'<td>(.*?)</td>', overall_row(text, 'example_count'))[:2] == [
        f'{count:.0f}', f'{count:.0f}']
    # The intervals of components/intervals.py: the candidate's AUC and its change.
    cells = re.findall(r'<td[^>]*>(.*?)</td>', overall_row(text, 'auc'))
    for cell, name, sign in ((cells[3], 'auc_interval', ''), (cells[4], 'auc_interval_diff', '+')):
        bounds = candidate[name]['boundedValue']
        assert cell == f"[{bounds['lowerBound']:{sign}.4f}, {bounds['upperBound']:{sign}.4f}]"
    assert '<th>candidate 95% interval</th><th>difference 95% interval</th>' in text


def test_a_page_from_real_tfma_output_lists_its_slices_and_verdict(real_page):
    text, _ = real_page
    table = re.search(r'<table id="slices">(.*?)</table>', text, re.S).group(1)
    listed = re.findall(r'<tr><td class="name">(.*?)</td>', table)
    written = tfma.load_eval_result(REAL_EVALUATION, model_name='candidate').get_slice_names()
    assert len(written) > 2 and listed == ['Overall'] + sorted(
        f'{column}:{value}' for (column, value), in (name for name in written if name))
    verdict = task_verdict(REAL_EVALUATION)
    assert f'class="verdict {"blessed" if verdict["blessed"] else "refused"}"' in text


def test_a_page_from_real_tfma_output_draws_both_models_curves(real_page):
    text, evaluation = real_page
    assert text.count('<svg') == 1
    # matplotlib writes each text it draws as paths with the text in a comment beside them.
    for title in ('ROC curve', 'Precision-recall curve', 'Calibration (10 prediction bins'):
        assert title in text
    for model in ('candidate', 'baseline'):
        assert f"{model} (AUC {_tfma_overall(model)['auc']['doubleValue']:.3f})" in text
        curves = evaluation.curves[model]
        assert len(curves['roc'][0]) > 100 and len(curves['pr'][0]) > 10
        # The calibration bins hold every eval example.
        assert sum(n for *_, n in curves['calibration']) == pytest.approx(
            _tfma_overall(model)['example_count']['doubleValue'])
