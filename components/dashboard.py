"""Evaluation dashboards: a static, self-contained HTML page per task, for any run of the pipeline.

TFMA's own views are notebook widgets that fetch JavaScript from a CDN. These pages need nothing but
a browser: the plots are inline SVG, the gate-weight chart an inline PNG. Per task a page shows the
metrics overall and per slice (candidate, baseline, difference), the ROC and precision-recall
curves, the calibration (reliability) plot, and the gate's verdict with its reasons; a failing
metric is shown in red. `index.html` lists the tasks and holds the gate-weight chart, each gate's
use of the experts, the experts' pairwise similarity and the warnings of expert collapse.

Inside the pipeline the `Dashboard` component writes them after the BlessingGate. For a past run:

    python -m components.dashboard --pipeline-root outputs/pipeline_root [--run latest] [--out DIR]

In Jupyter, `notebook_view(evaluation_uri)` opens TFMA's interactive view of one task instead.
"""

import argparse
import base64
import datetime
import html
import io
import json
import math
import os
import sys
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.writers import eval_config_writer
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from components import EvaluationDashboard, intervals
from components.blessing_gate import (ALL_TASKS_BLESSED, COMPONENT_ID as GATE_ID, VERDICT_FILE,
                                      describe, overall_intervals)
from trainer_module.expert_use import EXPERT_SIMILARITY, GATE_TOP_SHARE
from trainer_module.settings import GATE_REPORT_DIR, GATE_REPORT_FILE

COMPONENT_ID = 'Dashboard'
INDEX_PAGE = 'index.html'
CALIBRATION_BINS = 10
# The column order of the metric tables; other metrics follow in name order.
METRIC_ORDER = ('example_count', 'auc', 'auc_precision_recall', 'binary_crossentropy', 'calibration',
                'mean_squared_error', 'mean_absolute_error', 'mean_label', 'mean_prediction')
OVERALL = 'Overall'


def task_page(task: str) -> str:
    return f'{task}.html'


# ---------------------------------------------------------------------------------------------
# Reading a TFMA output


class TaskEvaluation:
    """What one Evaluator wrote: metrics per slice and model, and the overall slice's plots.

    `metrics`: {slice: {metric: {'candidate'|'baseline'|'difference': value}}};
    `curves`: {'candidate'|'baseline': {'roc': (fpr, tpr), 'pr': (recall, precision),
               'calibration': [(mean prediction, mean label, count)]}};
    `models`: {'candidate'|'baseline': TFMA's model name}. `load()` reads them from TFMA's output.
    """

    def __init__(self, uri: str, task: str, label: str, models: Dict[str, str],
                 metrics: Dict[str, Dict[str, Dict[str, float]]], curves: Dict[str, Dict],
                 intervals: Optional[Dict[str, Dict[str, Dict[str, Tuple[float, float]]]]] = None,
                 confidence: float = 0.95):
        """`intervals`: {slice: {metric: {'candidate'|'difference': (lower, upper)}}} at
        `confidence` (components/intervals.py)."""
        self.uri, self.task, self.label, self.models = uri, task, label, models
        self.metrics, self.curves = metrics, curves
        self.intervals, self.confidence = intervals or {}, confidence

    @classmethod
    def load(cls, evaluation_uri: str) -> 'TaskEvaluation':
        eval_config, _, _, _ = eval_config_writer.load_eval_run(evaluation_uri)
        candidate = next(spec for spec in eval_config.model_specs if not spec.is_baseline)
        baseline = next((spec for spec in eval_config.model_specs if spec.is_baseline), None)
        models = {'candidate': candidate.name}
        if baseline is not None:
            models['baseline'] = baseline.name
        role = {name: role for role, name in models.items()}
        metrics: Dict[str, Dict[str, Dict[str, float]]] = {}
        found_intervals: Dict[str, Dict[str, Dict[str, Tuple[float, float]]]] = {}
        for per_slice in tfma.load_metrics(evaluation_uri):
            slice_metrics = metrics.setdefault(_slice_name(per_slice.slice_key), {})
            for key_and_value in per_slice.metric_keys_and_values:
                key, value = key_and_value.key, key_and_value.value
                if not value.HasField('double_value') or key.model_name not in role:
                    continue
                column = 'difference' if key.is_diff else role[key.model_name]
                if key.name.endswith(intervals.SUFFIX):
                    bounds = key_and_value.confidence_interval
                    found_intervals.setdefault(_slice_name(per_slice.slice_key), {}).setdefault(
                        key.name[:-len(intervals.SUFFIX)], {})[column] = (
                            bounds.lower_bound.double_value.value,
                            bounds.upper_bound.double_value.value)
                    continue
                slice_metrics.setdefault(key.name, {})[column] = value.double_value.value
        curves: Dict[str, Dict] = {}
        for per_slice in tfma.load_plots(evaluation_uri):
            if _slice_name(per_slice.slice_key) != OVERALL:
                continue
            for key_and_value in per_slice.plot_keys_and_values:
                if key_and_value.key.model_name not in role:
                    continue
                model_curves = curves.setdefault(role[key_and_value.key.model_name], {})
                plot = key_and_value.value
                if plot.HasField('confusion_matrix_at_thresholds'):
                    model_curves.update(_roc_and_pr(plot.confusion_matrix_at_thresholds.matrices))
                if plot.HasField('calibration_histogram_buckets'):
                    model_curves['calibration'] = _calibration_bins(
                        plot.calibration_histogram_buckets.buckets)
        confidence = next((json.loads(metric.config).get('confidence', 0.95)
                           for spec in eval_config.metrics_specs for metric in spec.metrics
                           if metric.class_name == intervals.Intervals.__name__), 0.95)
        return cls(evaluation_uri, candidate.prediction_key, candidate.label_key, models, metrics,
                   curves, found_intervals, confidence)

    def slices(self) -> List[str]:
        return sorted(self.metrics, key=lambda name: (name != OVERALL, name))


def _slice_name(slice_key) -> str:
    return tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(slice_key)) or OVERALL


def _roc_and_pr(matrices) -> Dict[str, Tuple[List[float], List[float]]]:
    points = sorted(matrices, key=lambda m: m.threshold)
    fpr = [m.false_positive_rate for m in points]
    tpr = [m.recall for m in points]
    # Precision is undefined where nothing is predicted positive: TFMA writes 1 there; drop it.
    pr = [(m.recall, m.precision) for m in points if m.true_positives + m.false_positives > 0]
    return {'roc': (fpr, tpr), 'pr': ([r for r, _ in pr], [p for _, p in pr])}


def _calibration_bins(buckets) -> List[Tuple[float, float, float]]:
    """TFMA's fine histogram regrouped into CALIBRATION_BINS equal-width prediction bins:
    [(mean prediction, mean label, weighted examples)] for the non-empty bins."""
    sums = [[0.0, 0.0, 0.0] for _ in range(CALIBRATION_BINS)]
    for bucket in buckets:
        if not bucket.num_weighted_examples.value:
            continue
        lower = min(max(bucket.lower_threshold_inclusive, 0.0), 1.0)
        index = min(int(lower * CALIBRATION_BINS), CALIBRATION_BINS - 1)
        sums[index][0] += bucket.total_weighted_refined_prediction.value
        sums[index][1] += bucket.total_weighted_label.value
        sums[index][2] += bucket.num_weighted_examples.value
    return [(p / n, label / n, n) for p, label, n in sums if n]


# ---------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    return pyplot


_STYLE = {'candidate': dict(color='#1f77b4', linestyle='-'),
          'baseline': dict(color='#7f7f7f', linestyle='--')}


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format='svg')
    _pyplot().close(figure)
    text = buffer.getvalue()
    return text[text.index('<svg'):]


def _curve_plots(evaluation: TaskEvaluation) -> str:
    pyplot = _pyplot()
    figure, (roc, pr, calibration) = pyplot.subplots(1, 3, figsize=(13.5, 4.2))
    for role, curves in evaluation.curves.items():
        auc = evaluation.metrics.get(OVERALL, {}).get('auc', {}).get(role)
        label = role if auc is None else f'{role} (AUC {auc:.3f})'
        if 'roc' in curves:
            roc.plot(*curves['roc'], label=label, **_STYLE[role])
        if 'pr' in curves:
            pr.plot(*curves['pr'], label=role, **_STYLE[role])
        if 'calibration' in curves:
            predicted, observed, counts = zip(*curves['calibration'])
            calibration.plot(predicted, observed, marker='o', label=role, **_STYLE[role])
            if role == 'candidate':
                for x, y, n in curves['calibration']:
                    calibration.annotate(f'{n:.0f}', (x, y), textcoords='offset points',
                                         xytext=(4, -10), fontsize=7, color='#555555')
    roc.plot([0, 1], [0, 1], color='#cccccc', linewidth=1)
    roc.set(title='ROC curve', xlabel='false positive rate', ylabel='true positive rate',
            xlim=(0, 1), ylim=(0, 1.01))
    base_rate = evaluation.metrics.get(OVERALL, {}).get('mean_label', {}).get('candidate')
    if base_rate is not None:
        pr.axhline(base_rate, color='#cccccc', linewidth=1)
    pr.set(title='Precision-recall curve', xlabel='recall', ylabel='precision', xlim=(0, 1),
           ylim=(0, 1.01))
    top = max([1e-3] + [max(p, o) for c in evaluation.curves.values()
                        for p, o, _ in c.get('calibration', [])])
    calibration.plot([0, top], [0, top], color='#cccccc', linewidth=1)
    calibration.set(title=f'Calibration ({CALIBRATION_BINS} prediction bins, n per point)',
                    xlabel='mean prediction', ylabel='observed rate')
    for axes in (roc, pr, calibration):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc='best', fontsize=8)
    return _svg(figure)


# ---------------------------------------------------------------------------------------------
# Pages

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px;
       color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
nav a { margin-right: 14px; } nav .current { font-weight: bold; margin-right: 14px; }
.verdict { padding: 10px 14px; border-radius: 6px; margin: 14px 0; }
.verdict.blessed { background: #e6f4ea; border: 1px solid #34a853; }
.verdict.refused { background: #fce8e6; border: 1px solid #d93025; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th { background: #f5f5f5; } td.name { text-align: left; }
td.fail { color: #d93025; background: #fce8e6; font-weight: bold; }
p.warning { color: #b06000; background: #fef7e0; padding: 6px 10px; }
.muted { color: #777; font-size: 12px; }
"""


def _page(title: str, nav: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n'
            f'<body><nav>{nav}</nav>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n')


def _nav(tasks: List[str], current: Optional[str]) -> str:
    links = ['<span class="current">Overview</span>' if current is None
             else f'<a href="{INDEX_PAGE}">Overview</a>']
    for task in tasks:
        links.append(f'<span class="current">{html.escape(task)}</span>' if task == current
                     else f'<a href="{task_page(task)}">{html.escape(task)}</a>')
    links.append(f'<a href="{INDEX_PAGE}#gate-weights">Gate weights</a>')
    return ''.join(links)


def _format(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return ''
    if not math.isfinite(value):  # e.g. the AUC of an eval split with one class only
        return 'n/a'
    if abs(value) >= 1000 or (value == int(value) and not signed):
        return f'{value:,.0f}'
    return f'{value:+.4f}' if signed else f'{value:.4f}'


def _failed_cells(verdict: Dict) -> Dict[Tuple[str, str], str]:
    """{(slice, metric): 'difference'|'candidate'} for each failing bound, with its message."""
    return {(f['slice'], f['metric']): 'difference' if f['is_change'] else 'candidate'
            for f in verdict.get('failures', [])}


def _metric_names(metrics: Dict[str, Dict]) -> List[str]:
    known = [name for name in METRIC_ORDER if name in metrics]
    return known + sorted(set(metrics) - set(known))


def _interval_text(bounds: Optional[Tuple[float, float]], signed: bool) -> str:
    if bounds is None:
        return ''
    return f'[{_format(bounds[0], signed)}, {_format(bounds[1], signed)}]'


def _overall_table(evaluation: TaskEvaluation, failed) -> str:
    """Candidate, baseline and difference per metric, and the intervals of the candidate's value
    and of the difference (paired: both models on the same examples) where computed."""
    metrics = evaluation.metrics.get(OVERALL, {})
    found = evaluation.intervals.get(OVERALL, {})
    roles = ['candidate'] + (['baseline', 'difference'] if 'baseline' in evaluation.models else [])
    interval_roles = [role for role in ('candidate', 'difference')
                      if role in roles and any(role in found[name] for name in found)]
    rows = []
    for name in _metric_names(metrics):
        cells = [f'<td class="name">{html.escape(name)}</td>']
        for role in roles:
            css = ' class="fail"' if failed.get((OVERALL, name)) == role else ''
            cells.append(f'<td{css}>{_format(metrics[name].get(role), role == "difference")}</td>')
        for role in interval_roles:
            css = ' class="fail"' if failed.get((OVERALL, name)) == role else ''
            text = _interval_text(found.get(name, {}).get(role), role == 'difference')
            cells.append(f'<td{css}>{text}</td>')
        rows.append(f'<tr>{"".join(cells)}</tr>')
    level = f'{evaluation.confidence:.0%}'
    header = ''.join(f'<th>{role}</th>' for role in ['metric'] + roles) + ''.join(
        f'<th>{role} {level} interval</th>' for role in interval_roles)
    note = (f'<p class="muted">Intervals: {level} confidence; the difference\'s is paired (both '
            'models scored the same eval examples): DeLong for AUC, normal for means, delta method '
            'for calibration.</p>' if interval_roles else '')
    return f'<table id="overall"><tr>{header}</tr>{"".join(rows)}</table>{note}'


def _slice_table(evaluation: TaskEvaluation, failed) -> str:
    names = _metric_names({n: 0 for m in evaluation.metrics.values() for n in m})
    has_baseline = 'baseline' in evaluation.models
    header = '<th>slice</th>' + ''.join(f'<th>{html.escape(n)}</th>' for n in names)
    rows = []
    for slice_name in evaluation.slices():
        cells = [f'<td class="name">{html.escape(slice_name)}</td>']
        for name in names:
            values = evaluation.metrics[slice_name].get(name, {})
            text = _format(values.get('candidate'))
            if has_baseline and values.get('difference') is not None:
                text += f' <span class="muted">({_format(values["difference"], True)})</span>'
            css = ' class="fail"' if (slice_name, name) in failed else ''
            cells.append(f'<td{css}>{text}</td>')
        rows.append(f'<tr>{"".join(cells)}</tr>')
    note = ('<p class="muted">Candidate values; in brackets the difference from the baseline.</p>'
            if has_baseline else '')
    return f'{note}<table id="slices"><tr>{header}</tr>{"".join(rows)}</table>'


def _verdict_box(verdict: Dict) -> str:
    blessed = verdict.get('blessed', False)
    reasons = ''
    if not blessed:
        items = [html.escape(reason) for reason in describe(verdict)[len('refused: '):].split('; ')]
        reasons = '<ul>' + ''.join(f'<li>{item}</li>' for item in items) + '</ul>'
    return (f'<div class="verdict {"blessed" if blessed else "refused"}" id="verdict">'
            f'<strong>{"Blessed" if blessed else "Refused"}</strong>{reasons}</div>')


def render_task(evaluation: TaskEvaluation, verdict: Dict, tasks: List[str], run: str,
                history: str = '') -> str:
    """`history`: the task's History section (`history_section()`), if any."""
    failed = _failed_cells(verdict)
    baseline = ('candidate against the latest blessed model (baseline)'
                if 'baseline' in evaluation.models else
                'no baseline yet: this is the first model to be judged')
    body = [_verdict_box(verdict),
            f'<p class="muted">Label <code>{html.escape(evaluation.label)}</code>; {baseline}.</p>',
            '<h2>Metrics overall</h2>', _overall_table(evaluation, failed),
            '<h2>Metrics per slice</h2>', _slice_table(evaluation, failed)]
    if evaluation.curves:
        body += ['<h2>ROC, precision-recall and calibration</h2>', _curve_plots(evaluation)]
    else:
        body += ['<h2>Plots</h2>', '<p class="muted">ROC, precision-recall and calibration plots '
                 'are drawn for binary tasks.</p>']
    if history:
        body.append(history)
    body.append(f'<p class="muted">TFMA output: <code>{html.escape(evaluation.uri)}</code></p>')
    return _page(f'Task {evaluation.task} · run {run}', _nav(tasks, evaluation.task), '\n'.join(body))


def render_index(verdicts: Dict[str, Dict], evaluations: Dict[str, TaskEvaluation],
                 gate_report_dir: str, model_uri: str, blessed: bool, run: str) -> str:
    rows = []
    for task, verdict in verdicts.items():
        metrics = evaluations[task].metrics.get(OVERALL, {}) if task in evaluations else {}
        gated = 'auc' if 'auc' in metrics else 'mean_squared_error'
        value = metrics.get(gated, {}).get('candidate')
        css = ' class="fail"' if not verdict.get('blessed') else ''
        rows.append(
            f'<tr><td class="name"><a href="{task_page(task)}">{html.escape(task)}</a></td>'
            f'<td class="name">{gated}</td><td>{_format(value)}</td>'
            f'<td class="name"{css}>{html.escape(describe(verdict))}</td></tr>')
    body = [_verdict_box({'blessed': blessed, 'reason': 'at least one task refused the model'}),
            '<h2>Tasks</h2>',
            '<table id="tasks"><tr><th>task</th><th>metric</th><th>candidate</th><th>verdict</th>'
            f'</tr>{"".join(rows)}</table>',
            '<h2 id="gate-weights">Gate weights</h2>']
    chart = os.path.join(gate_report_dir, 'gates.png')
    if tf.io.gfile.exists(chart):
        with tf.io.gfile.GFile(chart, 'rb') as f:
            encoded = base64.b64encode(f.read()).decode('ascii')
        body.append('<p class="muted">Mean weight each task\'s gate gives each expert on the '
                    'validation split: tasks that share experts share what they learn.</p>'
                    f'<img alt="gate weights per task and expert" '
                    f'src="data:image/png;base64,{encoded}">')
    else:
        body.append('<p class="muted">This model has no gate report.</p>')
    body += _expert_use(gate_report_dir)
    body.append(f'<p class="muted">Model: <code>{html.escape(model_uri)}</code></p>')
    return _page(f'Evaluation of run {run}', _nav(list(verdicts), None), '\n'.join(body))


def _expert_use(gate_report_dir: str) -> List[str]:
    """The gate report's collapse warnings, each gate's use of the experts and the experts'
    pairwise similarity (trainer_module.expert_use), as HTML; nothing for a report without them."""
    path = os.path.join(gate_report_dir, GATE_REPORT_FILE)
    if not tf.io.gfile.exists(path):
        return []
    with tf.io.gfile.GFile(path) as f:
        report = json.load(f)
    if 'gate_use' not in report:
        return []
    fail = ' class="fail"'
    body = ['<h2 id="expert-use">Expert use</h2>']
    body += [f'<p class="warning">Warning: {html.escape(warning)}</p>'
             for warning in report['warnings']]
    rows = ''.join(
        f'<tr><td class="name">{html.escape(gate)}</td><td>{use["entropy"]:.3f} of '
        f'{use["max_entropy"]:.3f}</td><td>{use["top_expert"]}</td>'
        f'<td{fail if use["top_share"] > GATE_TOP_SHARE else ""}>'
        f'{use["top_share"]:.3f}</td></tr>'
        for gate, use in report['gate_use'].items())
    body.append('<table id="gate-use"><tr><th>gate</th><th>entropy of mean weights (nats)</th>'
                f'<th>top expert</th><th>its share</th></tr>{rows}</table>')
    similarity = report['expert_similarity']
    rows = ''.join(
        f'<tr><td class="name">expert {i}</td>' + ''.join(
            f'<td{fail if i != j and value > EXPERT_SIMILARITY else ""}>'
            f'{value:.3f}</td>' for j, value in enumerate(row)) + '</tr>'
        for i, row in enumerate(similarity))
    body.append('<p class="muted">Cosine similarity of two experts\' outputs for the same '
                'validation example, averaged: near 1, the two compute the same function.</p>'
                '<table id="expert-similarity"><tr><th></th>'
                + ''.join(f'<th>expert {j}</th>' for j in range(len(similarity)))
                + f'</tr>{rows}</table>')
    return body


def write_dashboards(verdict_path: str, out_dir: str, run: str,
                     history: Optional[List[Dict]] = None,
                     reference_aucs: Optional[Dict[str, float]] = None) -> str:
    """Renders every task's page and the index from a BlessingGate's verdict file; returns the
    index page's path. `history`: `history_entries()`, `reference_aucs`: {task: Bayes AUC}."""
    with tf.io.gfile.GFile(verdict_path) as f:
        gate = json.load(f)
    evaluations = {task: TaskEvaluation.load(uri)
                   for task, uri in gate.get('evaluations', {}).items()}
    return write_pages(gate['tasks'], evaluations, gate['model'], gate['blessed'], run, out_dir,
                       history, reference_aucs)


def write_pages(verdicts: Dict[str, Dict], evaluations: Dict[str, TaskEvaluation], model_uri: str,
                blessed: bool, run: str, out_dir: str, history: Optional[List[Dict]] = None,
                reference_aucs: Optional[Dict[str, float]] = None) -> str:
    """<task>.html per task of `verdicts` ({task: the gate's verdict}) and index.html into
    `out_dir`; the gate-weight chart comes from the model's gate report; a task page's History
    from `history` (`history_entries()`). Returns the index."""
    tasks = list(verdicts)
    tf.io.gfile.makedirs(out_dir)
    for task in tasks:
        if task in evaluations:
            section = (history_section(task, history, (reference_aucs or {}).get(task))
                       if history is not None else '')
            page = render_task(evaluations[task], verdicts[task], tasks, run, section)
        else:
            page = _page(f'Task {task} · run {run}', _nav(tasks, task), _verdict_box(verdicts[task]))
        with tf.io.gfile.GFile(os.path.join(out_dir, task_page(task)), 'w') as f:
            f.write(page)
    index = os.path.join(out_dir, INDEX_PAGE)
    with tf.io.gfile.GFile(index, 'w') as f:
        f.write(render_index(verdicts, evaluations, os.path.join(model_uri, GATE_REPORT_DIR),
                             model_uri, blessed, run))
    return index


@component
def Dashboard(blessing: InputArtifact[standard_artifacts.ModelBlessing],
              dashboard: OutputArtifact[EvaluationDashboard],
              history: InputArtifact[List[standard_artifacts.ModelBlessing]] = None,
              reference_aucs: Parameter[str] = '{}'):
    """Writes the run's dashboards from the BlessingGate's verdict (which names the evaluations and
    the model). `history`: the gate's earlier blessings, from ML Metadata (a Resolver); without it
    the pages have no History. `reference_aucs`: {task: Bayes AUC} as JSON, drawn in the History."""
    run = os.path.basename(blessing.uri.rstrip('/'))
    entries = history_entries(list(history) + [blessing]) if history is not None else None
    index = write_dashboards(os.path.join(blessing.uri, VERDICT_FILE), dashboard.uri, run, entries,
                             json.loads(reference_aucs))
    dashboard.set_string_custom_property('index', index)


# ---------------------------------------------------------------------------------------------
# History: the gate's runs in this pipeline root


def history_entries(blessings) -> List[Dict]:
    """One entry per BlessingGate blessing (artifacts from ML Metadata), oldest first:
    {'run', 'time' (ms since the epoch), 'model', 'model_id', 'blessed', 'serving',
    'tasks': {task: {'blessed', 'verdict', 'values': `overall_intervals()` of its evaluation}}}.
    'serving' marks the runs of the model the latest blessing blessed: the one the Pusher serves."""
    entries = []
    for blessing in sorted({b.id: b for b in blessings}.values(), key=lambda b: b.id):
        path = os.path.join(blessing.uri, VERDICT_FILE)
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path) as f:
            gate = json.load(f)
        tasks = {}
        for task, verdict in gate['tasks'].items():
            uri = gate.get('evaluations', {}).get(task)
            values = overall_intervals(uri) if uri and tf.io.gfile.exists(uri) else {}
            tasks[task] = {'blessed': verdict['blessed'], 'verdict': describe(verdict),
                           'values': values}
        entries.append({
            'run': os.path.basename(blessing.uri.rstrip('/')),
            'time': blessing.mlmd_artifact.create_time_since_epoch or None,
            'model': gate['model'], 'model_id': blessing.get_int_custom_property('current_model_id'),
            'blessed': bool(gate['blessed']), 'tasks': tasks, 'serving': False})
    serving = next((e['model'] for e in reversed(entries) if e['blessed']), None)
    for entry in entries:
        entry['serving'] = entry['model'] == serving
    return entries


def _value_and_interval(values: Dict, metric: str, signed: bool = False) -> str:
    found = values.get(metric)
    if not found:
        return ''
    return (f'{_format(found["value"], signed)} <span class="muted">'
            f'{_interval_text((found["lower"], found["upper"]), signed)}</span>')


def _history_plot(task: str, points: List[Tuple[str, Dict, bool, bool]], gated: str,
                  reference_auc: Optional[float]) -> str:
    """The gated metric and the calibration per run with their intervals; blessed runs green,
    refused red, the serving model's runs ringed; the Bayes AUC as a dashed line."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    pyplot = _pyplot()
    with matplotlib.rc_context({'svg.fonttype': 'none'}):  # text stays text, for readers and tests
        figure, axes = pyplot.subplots(1, 2, figsize=(13.5, 3.6))
        for panel, metric, reference in ((axes[0], gated, reference_auc),
                                         (axes[1], 'calibration', 1.0)):
            shown = [(i, values[metric], blessed, serving)
                     for i, (_, values, blessed, serving) in enumerate(points) if metric in values]
            if shown:
                x = [i for i, *_ in shown]
                y = [v['value'] for _, v, *_ in shown]
                errors = [[v['value'] - v['lower'] for _, v, *_ in shown],
                          [v['upper'] - v['value'] for _, v, *_ in shown]]
                panel.errorbar(x, y, yerr=errors, color=_STYLE['candidate']['color'], capsize=3,
                               marker='', linewidth=1)
                for i, v, blessed, serving in shown:
                    panel.plot(i, v['value'], 'o', color='#34a853' if blessed else '#d93025',
                               markersize=7, zorder=3)
                    if serving:
                        panel.plot(i, v['value'], 'o', markersize=13, markerfacecolor='none',
                                   markeredgecolor='#222222', zorder=4)
            if reference is not None and metric != 'calibration':
                panel.axhline(reference, color='#7f7f7f', linestyle='--', linewidth=1,
                              label=f'Bayes AUC {reference:.3f}')
                panel.legend(loc='lower right', fontsize=8)
            elif metric == 'calibration':
                panel.axhline(1.0, color='#cccccc', linewidth=1)
            panel.set_xticks(range(len(points)))
            panel.set_xticklabels([run for run, *_ in points], fontsize=8)
            panel.set(title=f'{task}: {metric} per run', xlabel='gate run')
            panel.grid(alpha=0.3)
        return _svg(figure)


def history_section(task: str, entries: List[Dict], reference_auc: Optional[float]) -> str:
    """The task's History: a table of every run with its values, intervals and verdict, which
    model serves now, and (from two runs on) the trend as a plot."""
    rows, points = [], []
    gated = ('mean_squared_error' if any('mean_squared_error' in e['tasks'].get(task, {}).get(
        'values', {}) for e in entries) else 'auc')
    for entry in entries:
        result = entry['tasks'].get(task)
        if result is None:
            continue
        values = result['values']
        when = (datetime.datetime.fromtimestamp(entry['time'] / 1000, datetime.timezone.utc)
                .strftime('%Y-%m-%d %H:%M UTC') if entry['time'] else '')
        css = '' if result['blessed'] else ' fail'
        serving = 'serving' if entry['serving'] else ''
        rows.append(
            f'<tr><td>{html.escape(entry["run"])}</td><td class="name">{when}</td>'
            f'<td class="name"><code>{html.escape(os.path.basename(entry["model"]))}</code></td>'
            f'<td>{_value_and_interval(values, gated)}</td>'
            f'<td>{_value_and_interval(values, gated + " change", True)}</td>'
            f'<td>{_value_and_interval(values, "calibration")}</td>'
            f'<td class="name{css}">{html.escape(result["verdict"])}</td>'
            f'<td class="name">{serving}</td></tr>')
        points.append((entry['run'], values, result['blessed'], entry['serving']))
    if not rows:
        return ''
    header = ''.join(f'<th>{name}</th>' for name in (
        'gate run', 'time', 'model', gated, f'{gated} change from its baseline', 'calibration',
        'verdict', 'serving'))
    reference = (f' The dashed line is the Bayes AUC of the data ({reference_auc:.3f}): what the '
                 'true probabilities reach.' if reference_auc is not None else '')
    parts = ['<h2 id="history">History</h2>',
             f'<p class="muted">Every gate run of this pipeline root, oldest first (from ML '
             f'Metadata), with their intervals; "serving" marks the runs of the model the '
             f'latest blessing blessed. In the plots a point is green when the gate blessed the '
             f'run, red when it refused it, ringed when its model is serving.{reference}</p>',
             f'<table id="history-table"><tr>{header}</tr>{"".join(rows)}</table>']
    if len(points) > 1:
        parts.append(f'<div id="history-plot">{_history_plot(task, points, gated, reference_auc)}'
                     '</div>')
    else:
        parts.append('<p class="muted">The trend is drawn from the second run on.</p>')
    return '\n'.join(parts)


# ---------------------------------------------------------------------------------------------
# Past runs and notebooks


def gate_runs(pipeline_root: str) -> List[str]:
    """The BlessingGate executions under `pipeline_root` that wrote a verdict, oldest first."""
    blessings = os.path.join(pipeline_root, GATE_ID, 'blessing')
    if not tf.io.gfile.isdir(blessings):
        return []
    names = [name.rstrip('/') for name in tf.io.gfile.listdir(blessings)]
    runs = [name for name in names
            if tf.io.gfile.exists(os.path.join(blessings, name, VERDICT_FILE))]
    return sorted(runs, key=lambda name: (not name.isdigit(), int(name) if name.isdigit() else 0,
                                          name))


def gate_blessings(metadata_path: str) -> list:
    """The BlessingGate's blessings in a SQLite ML Metadata store, as artifacts, oldest first."""
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel
    import ml_metadata as mlmd  # pylint: disable=import-outside-toplevel
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(config)
    artifact_type = store.get_artifact_type(standard_artifacts.ModelBlessing.TYPE_NAME)
    return [artifact_utils.deserialize_artifact(artifact_type, artifact)
            for artifact in store.get_artifacts_by_type(standard_artifacts.ModelBlessing.TYPE_NAME)
            if ALL_TASKS_BLESSED in artifact.custom_properties
            and artifact.state == metadata_store_pb2.Artifact.LIVE]


def notebook_view(evaluation_uri: str, slicing_column: Optional[str] = None):
    """TFMA's interactive slicing-metrics view of one task's evaluation, for Jupyter (it needs the
    TFMA notebook extension and network access for its JavaScript)."""
    return tfma.view.render_slicing_metrics(tfma.load_eval_result(evaluation_uri),
                                            slicing_column=slicing_column)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Writes the evaluation dashboards of a past pipeline run.')
    parser.add_argument('--pipeline-root', required=True,
                        help='the pipeline root of the runs (local_runner: <output>/pipeline_root)')
    parser.add_argument('--run', default='latest',
                        help="'latest', or a BlessingGate execution id (a directory under "
                             '<pipeline root>/BlessingGate/blessing/)')
    parser.add_argument('--out', help='where to write the pages '
                                      '(default: <pipeline root>/dashboards/run-<run>)')
    parser.add_argument('--metadata', help='the ML Metadata store (SQLite) of the runs, for the '
                                           'History (default: metadata.sqlite beside the pipeline '
                                           'root, as local_runner writes it, if there)')
    args = parser.parse_args(argv)
    runs = gate_runs(args.pipeline_root)
    if not runs:
        sys.exit(f'error: no run with a gate verdict under {args.pipeline_root}')
    run = runs[-1] if args.run == 'latest' else args.run
    if run not in runs:
        sys.exit(f'error: no run {run!r} under {args.pipeline_root}; runs: {", ".join(runs)}')
    out = args.out or os.path.join(args.pipeline_root, 'dashboards', f'run-{run}')
    metadata = args.metadata or os.path.join(os.path.dirname(os.path.abspath(
        args.pipeline_root.rstrip('/'))), 'metadata.sqlite')
    history = None
    if tf.io.gfile.exists(metadata):
        blessings = gate_blessings(metadata)
        this = next((b.id for b in blessings if os.path.basename(b.uri.rstrip('/')) == run), None)
        history = history_entries([b for b in blessings if this is None or b.id <= this])
    index = write_dashboards(
        os.path.join(args.pipeline_root, GATE_ID, 'blessing', run, VERDICT_FILE), out, run, history)
    print(index)


if __name__ == '__main__':
    main()
