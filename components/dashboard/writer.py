"""Writing a run's dashboards into a directory: a page per task and the overview, from the
BlessingGate's verdict file (`write_dashboards`, what the component and the command call) or from
verdicts and evaluations at hand (`write_pages`)."""

import json
import os
from typing import Dict, List, Optional

import tensorflow as tf

from components.dashboard.history import history_section
from components.dashboard.pages import (
    INDEX_PAGE,
    render_index,
    render_task,
    render_verdict_only,
    task_page,
)
from components.dashboard.tfma_output import TaskEvaluation
from trainer_module.settings import GATE_REPORT_DIR


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
            page = render_verdict_only(task, verdicts[task], tasks, run)
        with tf.io.gfile.GFile(os.path.join(out_dir, task_page(task)), 'w') as f:
            f.write(page)
    index = os.path.join(out_dir, INDEX_PAGE)
    with tf.io.gfile.GFile(index, 'w') as f:
        f.write(render_index(verdicts, evaluations, os.path.join(model_uri, GATE_REPORT_DIR),
                             model_uri, blessed, run))
    return index
