"""The History of a task's page: the BlessingGate's runs in one pipeline root, read from ML
Metadata (`gate_blessings`, `history_entries`) or from the pipeline root's directories
(`gate_runs`), and drawn as a table of every run and a plot of the trend (`history_section`)."""

import datetime
import html
import json
import os
from typing import Dict, List, Optional, Tuple

import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.blessing_gate import (
    ALL_TASKS_BLESSED,
    VERDICT_FILE,
    describe,
    gated_metric,
    overall_intervals,
)
from components.blessing_gate import COMPONENT_ID as GATE_ID
from components.dashboard.pages import format_value, interval_text
from components.dashboard.plots import STYLE, pyplot, svg
from trainer_module.task_types import METRICS
from trainer_module.task_types.binary import AUC, CALIBRATION


def history_entries(blessings) -> List[Dict]:
    """One entry per BlessingGate blessing (artifacts from ML Metadata), oldest first:
    {'run', 'time' (ms since the epoch), 'span' (the span judged on, data by span; else None),
    'model', 'model_id', 'blessed', 'serving',
    'tasks': {task: {'blessed', 'verdict', 'values': `overall_intervals()` of its evaluation,
    'gated': the metric it was gated on, 'calibration': its calibration bound or None}}}.
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
                           'values': values, 'gated': gated_metric(verdict, values),
                           'calibration': (verdict.get('gate') or {}).get('calibration')}
        entries.append({
            'run': os.path.basename(blessing.uri.rstrip('/')),
            'time': blessing.mlmd_artifact.create_time_since_epoch or None,
            'span': gate.get('span'),
            'model': gate['model'],
            'model_id': blessing.get_int_custom_property('current_model_id'),
            'blessed': bool(gate['blessed']), 'tasks': tasks, 'serving': False})
    serving = next((e['model'] for e in reversed(entries) if e['blessed']), None)
    for entry in entries:
        entry['serving'] = entry['model'] == serving
    return entries


def _value_and_interval(values: Dict, metric: str, signed: bool = False) -> str:
    found = values.get(metric)
    if not found:
        return ''
    return (f'{format_value(found["value"], signed)} <span class="muted">'
            f'{interval_text((found["lower"], found["upper"]), signed)}</span>')


def _history_plot(task: str, points: List[Tuple[str, Dict, bool, bool]], gated: str,
                  reference_auc: Optional[float], calibration_bound: Optional[List]) -> str:
    """The gated metric, the AUC (when another metric is gated) and the calibration per run with
    their intervals; blessed runs green, refused red, the serving model's runs ringed; the Bayes
    AUC and the calibration bound as dashed lines."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    plt = pyplot()
    with matplotlib.rc_context({'svg.fonttype': 'none'}):  # text stays text, for readers and tests
        metrics = [gated] + [AUC.name] * (gated != AUC.name and any(
            AUC.name in values for _, values, _, _ in points)) + [CALIBRATION.name]
        figure, axes = plt.subplots(1, len(metrics), figsize=(6.75 * len(metrics), 3.6))
        for panel, metric in zip(axes, metrics):
            shown = [(i, values[metric], blessed, serving)
                     for i, (_, values, blessed, serving) in enumerate(points) if metric in values]
            if shown:
                x = [i for i, *_ in shown]
                y = [v['value'] for _, v, *_ in shown]
                errors = [[v['value'] - v['lower'] for _, v, *_ in shown],
                          [v['upper'] - v['value'] for _, v, *_ in shown]]
                panel.errorbar(x, y, yerr=errors, color=STYLE['candidate']['color'], capsize=3,
                               marker='', linewidth=1)
                for i, v, blessed, serving in shown:
                    panel.plot(i, v['value'], 'o', color='#34a853' if blessed else '#d93025',
                               markersize=7, zorder=3)
                    if serving:
                        panel.plot(i, v['value'], 'o', markersize=13, markerfacecolor='none',
                                   markeredgecolor='#222222', zorder=4)
            if metric == CALIBRATION.name:
                panel.axhline(1.0, color='#cccccc', linewidth=1)
                for side, bound in zip(('min', 'max'), calibration_bound or ()):
                    if bound is not None:
                        panel.axhline(bound, color='#d93025', linestyle='--', linewidth=1,
                                      label=f'bound {side} {bound:g}')
            elif reference_auc is not None and metric == AUC.name:
                panel.axhline(reference_auc, color='#7f7f7f', linestyle='--', linewidth=1,
                              label=f'Bayes AUC {reference_auc:.3f}')
            if panel.get_legend_handles_labels()[0]:
                panel.legend(loc='lower right', fontsize=8)
            panel.set_xticks(range(len(points)))
            panel.set_xticklabels([run for run, *_ in points], fontsize=8)
            panel.set(title=f'{task}: {metric} per run', xlabel='gate run')
            panel.grid(alpha=0.3)
        return svg(figure)


def history_section(task: str, entries: List[Dict], reference_auc: Optional[float]) -> str:
    """The task's History: a table of every run with its values, intervals and verdict, which
    model serves now, and (from two runs on) the trend as a plot."""
    rows, points = [], []
    results = [e['tasks'][task] for e in entries if task in e['tasks']]
    # The latest run's gate names the columns; the other metrics with intervals follow it (GAUC
    # beside AUC).
    gated = results[-1]['gated'] if results else AUC.name
    calibration_bound = results[-1]['calibration'] if results else None
    others = [name for name in METRICS if name not in (gated, CALIBRATION.name)
              and any(name in r['values'] for r in results)]
    # Data by span: a run per span, and the span it was judged on beside the run.
    by_span = any(entry.get('span') is not None for entry in entries)
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
            f'<tr><td>{html.escape(entry["run"])}</td>'
            + (f'<td>{entry.get("span") if entry.get("span") is not None else ""}</td>'
               if by_span else '')
            + f'<td class="name">{when}</td>'
            f'<td class="name"><code>{html.escape(os.path.basename(entry["model"]))}</code></td>'
            f'<td>{_value_and_interval(values, gated)}</td>'
            f'<td>{_value_and_interval(values, gated + " change", True)}</td>'
            + ''.join(f'<td>{_value_and_interval(values, name)}</td>' for name in others)
            + f'<td>{_value_and_interval(values, CALIBRATION.name)}</td>'
            f'<td class="name{css}">{html.escape(result["verdict"])}</td>'
            f'<td class="name">{serving}</td></tr>')
        points.append((f'span {entry["span"]}' if by_span and entry.get('span') is not None
                       else entry['run'], values, result['blessed'], entry['serving']))
    if not rows:
        return ''
    header = ''.join(f'<th>{name}</th>' for name in (
        'gate run', *(['span'] if by_span else []), 'time', 'model', f'{gated} (gated)',
        f'{gated} change from its baseline',
        *others, CALIBRATION.name, 'verdict', 'serving'))
    reference = (f' The dashed line is the Bayes AUC of the data ({reference_auc:.3f}): what the '
                 'true probabilities reach.' if reference_auc is not None else '')
    parts = ['<h2 id="history">History</h2>',
             f'<p class="muted">Every gate run of this pipeline root, oldest first (from ML '
             f'Metadata), with their intervals; "serving" marks the runs of the model the '
             f'latest blessing blessed. In the plots a point is green when the gate blessed the '
             f'run, red when it refused it, ringed when its model is serving.{reference}</p>',
             f'<table id="history-table"><tr>{header}</tr>{"".join(rows)}</table>']
    if len(points) > 1:
        plot = _history_plot(task, points, gated, reference_auc, calibration_bound)
        parts.append(f'<div id="history-plot">{plot}</div>')
    else:
        parts.append('<p class="muted">The trend is drawn from the second run on.</p>')
    return '\n'.join(parts)



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
    import ml_metadata as mlmd  # pylint: disable=import-outside-toplevel
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(config)
    artifact_type = store.get_artifact_type(standard_artifacts.ModelBlessing.TYPE_NAME)
    return [artifact_utils.deserialize_artifact(artifact_type, artifact)
            for artifact in store.get_artifacts_by_type(standard_artifacts.ModelBlessing.TYPE_NAME)
            if ALL_TASKS_BLESSED in artifact.custom_properties
            and artifact.state == metadata_store_pb2.Artifact.LIVE]
