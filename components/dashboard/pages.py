"""The dashboards' HTML: the page frame and its style, the navigation between the tasks, the
metric tables (overall, with intervals, and per slice), the gate's verdict box, a task's page
(`render_task`) and the overview (`render_index`, with the gate-weight chart and the experts' use),
and how numbers and intervals are written on them."""

import base64
import html
import json
import math
import os
from typing import Dict, Iterable, List, Optional, Tuple

import tensorflow as tf

from components.blessing_gate import describe, gated_metric
from components.dashboard.plots import curve_plots
from components.dashboard.tfma_output import OVERALL, TaskEvaluation
from trainer_module.expert_use import EXPERT_SIMILARITY, GATE_TOP_SHARE
from trainer_module.settings import GATE_REPORT_FILE
from trainer_module.vocabulary_report import read_vocabulary_report

INDEX_PAGE = 'index.html'
# The column order of the metric tables; other metrics follow in name order.
METRIC_ORDER = ('example_count', 'auc', 'gauc', 'gauc_groups', 'gauc_coverage',
                'auc_precision_recall', 'binary_crossentropy',
                'calibration', 'mean_squared_error', 'mean_absolute_error', 'mean_label',
                'mean_prediction')


def task_page(task: str) -> str:
    """The file name of `task`'s page, beside INDEX_PAGE."""
    return f'{task}.html'


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


def format_value(value: Optional[float], signed: bool = False) -> str:
    """`value` as a table shows it: whole numbers and values from 1000 on with thousands
    separators, others to 4 decimals (`signed`: with their sign, as differences are); '' for
    None, 'n/a' for a value that is not finite."""
    if value is None:
        return ''
    if not math.isfinite(value):  # e.g. the AUC of an eval split with one class only
        return 'n/a'
    if abs(value) >= 1000 or (value == int(value) and not signed):
        return f'{value:,.0f}'
    return f'{value:+.4f}' if signed else f'{value:.4f}'


def _share(value: Optional[float]) -> str:
    """A share as a percentage; 'n/a' where there is none."""
    return f'{value:.1%}' if value is not None and math.isfinite(value) else 'n/a'


def _failed_cells(verdict: Dict) -> Dict[Tuple[str, str], str]:
    """{(slice, metric): 'difference'|'candidate'} for each failing bound, with its message."""
    return {(f['slice'], f['metric']): 'difference' if f['is_change'] else 'candidate'
            for f in verdict.get('failures', [])}


def _metric_names(metrics: Iterable[str]) -> List[str]:
    names = set(metrics)
    known = [name for name in METRIC_ORDER if name in names]
    return known + sorted(names - set(known))


def interval_text(bounds: Optional[Tuple[float, float]], signed: bool) -> str:
    """`bounds` (lower, upper) as `[lower, upper]`, each as `format_value` writes it; '' for
    None."""
    if bounds is None:
        return ''
    return f'[{format_value(bounds[0], signed)}, {format_value(bounds[1], signed)}]'


def _overall_table(evaluation: TaskEvaluation, failed, gated: str) -> str:
    """Candidate, baseline and difference per metric, and the intervals of the candidate's value
    and of the difference (paired: both models on the same examples) where computed; the `gated`
    metric marked."""
    metrics = evaluation.metrics.get(OVERALL, {})
    found = evaluation.intervals.get(OVERALL, {})
    roles = ['candidate'] + (['baseline', 'difference'] if 'baseline' in evaluation.models else [])
    interval_roles = [role for role in ('candidate', 'difference')
                      if role in roles and any(role in found[name] for name in found)]
    rows = []
    for name in _metric_names(metrics):
        mark = ' <strong>(gated)</strong>' if name == gated else ''
        cells = [f'<td class="name">{html.escape(name)}{mark}</td>']
        for role in roles:
            css = ' class="fail"' if failed.get((OVERALL, name)) == role else ''
            text = format_value(metrics[name].get(role), role == 'difference')
            cells.append(f'<td{css}>{text}</td>')
        for role in interval_roles:
            css = ' class="fail"' if failed.get((OVERALL, name)) == role else ''
            text = interval_text(found.get(name, {}).get(role), role == 'difference')
            cells.append(f'<td{css}>{text}</td>')
        rows.append(f'<tr>{"".join(cells)}</tr>')
    level = f'{evaluation.confidence:.0%}'
    header = ''.join(f'<th>{role}</th>' for role in ['metric'] + roles) + ''.join(
        f'<th>{role} {level} interval</th>' for role in interval_roles)
    note = (f'<p class="muted">Intervals: {level} confidence; the difference\'s is paired (both '
            'models scored the same eval examples): DeLong for AUC, a jackknife over groups for '
            'GAUC, normal for means, delta method for calibration.</p>' if interval_roles else '')
    if 'gauc' in metrics:
        groups = metrics.get('gauc_groups', {}).get('candidate')
        coverage = metrics.get('gauc_coverage', {}).get('candidate')
        note += (f'<p class="muted" id="gauc-groups">GAUC: the AUC within each group of eval '
                 f'examples (<code>{html.escape(evaluation.group_by or "")}</code>), weighted by '
                 f'their examples, over the {format_value(groups)} groups that hold both classes '
                 f'({_share(coverage)} of the examples); the others have no AUC.</p>')
    return f'<table id="overall"><tr>{header}</tr>{"".join(rows)}</table>{note}'


def _slice_table(evaluation: TaskEvaluation, failed) -> str:
    names = _metric_names({n for m in evaluation.metrics.values() for n in m})
    has_baseline = 'baseline' in evaluation.models
    header = '<th>slice</th>' + ''.join(f'<th>{html.escape(n)}</th>' for n in names)
    rows = []
    for slice_name in evaluation.slices():
        cells = [f'<td class="name">{html.escape(slice_name)}</td>']
        for name in names:
            values = evaluation.metrics[slice_name].get(name, {})
            text = format_value(values.get('candidate'))
            if has_baseline and values.get('difference') is not None:
                text += f' <span class="muted">({format_value(values["difference"], True)})</span>'
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
    """The page of `evaluation`'s task in run `run`: the gate's `verdict` on it, its metrics
    overall and per slice (the failing ones in red), its curves and `history`, the task's History
    section (`history_section()`), if any. `tasks`: every task of the run, for the navigation."""
    failed = _failed_cells(verdict)
    gated = gated_metric(verdict, evaluation.metrics.get(OVERALL, {}))
    baseline = ('candidate against the latest blessed model (baseline)'
                if 'baseline' in evaluation.models else
                'no baseline yet: this is the first model to be judged')
    space = (f'; judged (and trained) only on the rows where <code>'
             f'{html.escape(evaluation.sample_space)}</code> is 1, its sample space, as the '
             f'example count says' if evaluation.sample_space else '')
    body = [_verdict_box(verdict),
            f'<p class="muted" id="label">Label <code>{html.escape(evaluation.label)}</code>{space}'
            f'; {baseline}.</p>',
            f'<p>Gated on <strong>{html.escape(gated)}</strong>.</p>',
            '<h2>Metrics overall</h2>', _overall_table(evaluation, failed, gated),
            '<h2>Metrics per slice</h2>', _slice_table(evaluation, failed)]
    if evaluation.curves:
        body += ['<h2>ROC, precision-recall and calibration</h2>',
                 curve_plots(evaluation, (verdict.get('gate') or {}).get('calibration'))]
    else:
        body += ['<h2>Plots</h2>', '<p class="muted">ROC, precision-recall and calibration plots '
                 'are drawn for binary tasks.</p>']
    if history:
        body.append(history)
    body.append(f'<p class="muted">TFMA output: <code>{html.escape(evaluation.uri)}</code></p>')
    return _page(f'Task {evaluation.task} · run {run}', _nav(tasks, evaluation.task),
                 '\n'.join(body))


def render_verdict_only(task: str, verdict: Dict, tasks: List[str], run: str) -> str:
    """The page of a task the run has no evaluation of: the gate's `verdict` on it alone."""
    return _page(f'Task {task} · run {run}', _nav(tasks, task), _verdict_box(verdict))


def render_index(verdicts: Dict[str, Dict], evaluations: Dict[str, TaskEvaluation],
                 gate_report_dir: str, model_uri: str, blessed: bool, run: str) -> str:
    """The overview page of a run: each task of `verdicts` ({task: the gate's verdict}) with its
    gated metric's value (from `evaluations`, where there) and verdict, the model's gate-weight
    chart and its experts' use (from the gate report in `gate_report_dir`), and the vocabularies
    the model was trained with (the vocabulary report in `model_uri`)."""
    rows = []
    for task, verdict in verdicts.items():
        metrics = evaluations[task].metrics.get(OVERALL, {}) if task in evaluations else {}
        gated = gated_metric(verdict, metrics)
        value = metrics.get(gated, {}).get('candidate')
        css = ' class="fail"' if not verdict.get('blessed') else ''
        rows.append(
            f'<tr><td class="name"><a href="{task_page(task)}">{html.escape(task)}</a></td>'
            f'<td class="name">{gated}</td><td>{format_value(value)}</td>'
            f'<td class="name"{css}>{html.escape(describe(verdict))}</td></tr>')
    body = [_verdict_box({'blessed': blessed, 'reason': 'at least one task refused the model'}),
            '<h2>Tasks</h2>',
            '<table id="tasks"><tr><th>task</th><th>metric</th><th>candidate</th><th>verdict</th>'
            f'</tr>{"".join(rows)}</table>',
            '<h2 id="gate-weights">Gate weights</h2>']
    chart = os.path.join(gate_report_dir, 'gates.png')
    report = _gate_report(gate_report_dir)
    if tf.io.gfile.exists(chart):
        with tf.io.gfile.GFile(chart, 'rb') as f:
            encoded = base64.b64encode(f.read()).decode('ascii')
        body.append('<p class="muted">Mean weight each gate gives each expert it weighs on the '
                    'validation split (a gate per task; a PLE\'s per level, and its shared '
                    'gates): tasks that share experts share what they learn.</p>'
                    f'<img alt="gate weights per gate and expert" '
                    f'src="data:image/png;base64,{encoded}">')
    elif report.get('note'):
        body.append(f'<p class="muted" id="no-gates">Not applicable: '
                    f'{html.escape(report["note"])}.</p>')
    else:
        body.append('<p class="muted">This model has no gate report.</p>')
    body += _expert_use(report)
    body += _vocabularies(read_vocabulary_report(model_uri))
    body.append(f'<p class="muted">Model: <code>{html.escape(model_uri)}</code></p>')
    return _page(f'Evaluation of run {run}', _nav(list(verdicts), None), '\n'.join(body))


def _vocabularies(report: Dict) -> List[str]:
    """The vocabulary report (trainer_module/vocabulary_report.py) as a table: per feature its
    tokens and OOV buckets (or hash buckets), and per split the share of its values that are OOV;
    nothing for a model without one."""
    if not report:
        return []
    splits = list(dict.fromkeys(split for entry in report.values()
                                for split in entry.get('splits', {})))
    rows = []
    for name, entry in report.items():
        if 'hash_buckets' in entry:
            cells = (f'<td class="name">hashed</td><td>{entry["hash_buckets"]:,} buckets</td>'
                     + '<td class="muted">no vocabulary</td>' * len(splits))
        else:
            source = 'own' if entry['vocabulary'] == name else f'{entry["vocabulary"]}\'s'
            shares = [entry['splits'].get(split, {}).get('oov_share') for split in splits]
            cells = (f'<td class="name">{html.escape(source)}</td>'
                     f'<td>{entry["tokens"]:,} + {entry["oov_buckets"]} OOV</td>'
                     + ''.join(f'<td>{"" if share is None else f"{share:.2%}"}</td>'
                               for share in shares))
        rows.append(f'<tr><td class="name">{html.escape(name)}</td>{cells}</tr>')
    return ['<h2 id="vocabularies">Vocabularies</h2>',
            '<p class="muted">Each feature\'s ids: its vocabulary\'s tokens and OOV buckets, or '
            'its hash buckets; per split, the share of its values outside the vocabulary (of a '
            'list, of the values it holds).</p>',
            '<table id="vocabularies"><tr><th>feature</th><th>vocabulary</th><th>ids</th>'
            + ''.join(f'<th>OOV in {html.escape(split)}</th>' for split in splits)
            + f'</tr>{"".join(rows)}</table>']


def _gate_report(gate_report_dir: str) -> Dict:
    """The gate report (trainer_module/gate_report.py) in `gate_report_dir`; {} without one."""
    path = os.path.join(gate_report_dir, GATE_REPORT_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _expert_use(report: Dict) -> List[str]:
    """The gate report's collapse warnings, each gate's use of the experts and the experts'
    pairwise similarity (trainer_module.expert_use), as HTML, the experts by name (by number in
    a report that names none); nothing for a report without them."""
    if 'gate_use' not in report:
        return []
    similarity = report['expert_similarity']
    experts = report.get('experts') or [f'expert {i}' for i in range(len(similarity))]
    gate_experts = report.get('gate_experts') or {gate: experts for gate in report['gate_use']}
    fail = ' class="fail"'
    body = ['<h2 id="expert-use">Expert use</h2>']
    body += [f'<p class="warning">Warning: {html.escape(warning)}</p>'
             for warning in report['warnings']]
    rows = ''.join(
        f'<tr><td class="name">{html.escape(gate)}</td><td>{use["entropy"]:.3f} of '
        f'{use["max_entropy"]:.3f}</td>'
        f'<td class="name">{html.escape(gate_experts[gate][use["top_expert"]])}</td>'
        f'<td{fail if use["top_share"] > GATE_TOP_SHARE else ""}>'
        f'{use["top_share"]:.3f}</td></tr>'
        for gate, use in report['gate_use'].items())
    body.append('<table id="gate-use"><tr><th>gate</th><th>entropy of mean weights (nats)</th>'
                f'<th>top expert</th><th>its share</th></tr>{rows}</table>')
    # None: two experts no gate weighs together (of two PLE levels), not compared.
    rows = ''.join(
        f'<tr><td class="name">{html.escape(experts[i])}</td>' + ''.join(
            '<td></td>' if value is None else
            f'<td{fail if i != j and value > EXPERT_SIMILARITY else ""}>{value:.3f}</td>'
            for j, value in enumerate(row)) + '</tr>'
        for i, row in enumerate(similarity))
    body.append('<p class="muted">Cosine similarity of two experts\' outputs for the same '
                'validation example, averaged, for experts that gates weigh together: near 1, '
                'the two compute the same function.</p>'
                '<table id="expert-similarity"><tr><th></th>'
                + ''.join(f'<th>{html.escape(expert)}</th>' for expert in experts)
                + f'</tr>{rows}</table>')
    return body
