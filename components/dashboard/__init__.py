"""Evaluation dashboards: a static, self-contained HTML page per task, for any run of the pipeline.

TFMA's own views are notebook widgets that fetch JavaScript from a CDN. These pages need nothing but
a browser: the plots are inline SVG, the gate-weight chart an inline PNG. Per task a page shows the
metrics overall and per slice (candidate, baseline, difference), the ROC and precision-recall
curves, the calibration (reliability) plot, and the gate's verdict with its reasons; a failing
metric is shown in red. `index.html` lists the tasks and holds the gate-weight chart, each gate's
use of the experts, the experts' pairwise similarity and the warnings of expert collapse.

Inside the pipeline the `Dashboard` component (here) writes them after the BlessingGate. For a past
run (`__main__.py`):

    python -m components.dashboard --pipeline-root outputs/pipeline_root [--run latest] [--out DIR]

In Jupyter, `notebook_view(evaluation_uri)` opens TFMA's interactive view of one task instead.

The modules: `tfma_output` reads an Evaluator's output, `plots` draws the curves, `pages` writes
the HTML, `history` reads and draws the gate's past runs, `writer` writes a run's pages; this
package re-exports what the pipeline, the tests and notebooks use.
"""

import json
import os
from typing import List

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import EvaluationDashboard
from components.blessing_gate import VERDICT_FILE
from components.dashboard.history import gate_blessings, gate_runs, history_entries, history_section
from components.dashboard.pages import INDEX_PAGE, METRIC_ORDER, render_index, render_task, task_page
from components.dashboard.tfma_output import CALIBRATION_BINS, OVERALL, TaskEvaluation, notebook_view
from components.dashboard.writer import write_dashboards, write_pages

__all__ = ['CALIBRATION_BINS', 'COMPONENT_ID', 'Dashboard', 'INDEX_PAGE', 'METRIC_ORDER', 'OVERALL',
           'TaskEvaluation', 'gate_blessings', 'gate_runs', 'history_entries', 'history_section',
           'notebook_view', 'render_index', 'render_task', 'task_page', 'write_dashboards',
           'write_pages']

COMPONENT_ID = 'Dashboard'


# Defined in the package's own module, not a submodule: TFX names a @component function's
# component type and executor class after the module that defines it
# (components.dashboard.Dashboard, components.dashboard.Dashboard_Executor), and the compiled
# pipeline spec and ML Metadata (the cache of past runs) hold those names.
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
