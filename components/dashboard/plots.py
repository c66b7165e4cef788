"""The dashboards' plots, drawn with matplotlib as inline SVG: the style of the candidate's and
the baseline's lines, and a task's ROC, precision-recall and calibration curves side by side."""

import io
from typing import Optional, Sequence

from components.dashboard.tfma_output import CALIBRATION_BINS, OVERALL, TaskEvaluation
from trainer_module.task_types.binary import AUC

# The candidate's lines and the baseline's, in every plot.
STYLE = {'candidate': dict(color='#1f77b4', linestyle='-'),
         'baseline': dict(color='#7f7f7f', linestyle='--')}


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed); imported on first use."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
    return plt


def svg(figure) -> str:
    """`figure` as an inline `<svg>` element (without the XML prologue); closes the figure."""
    buffer = io.StringIO()
    figure.tight_layout()
    figure.savefig(buffer, format='svg')
    pyplot().close(figure)
    text = buffer.getvalue()
    return text[text.index('<svg'):]


def curve_plots(evaluation: TaskEvaluation, calibration_bound: Optional[Sequence] = None) -> str:
    """The overall slice's ROC, precision-recall and calibration curves of the candidate (and the
    baseline, where there is one), as one inline SVG. `calibration_bound` (min, max; either may be
    None): the gate's bound on calibration, drawn as the lines observed = predicted / bound, where
    a model calibrated at the bound would lie."""
    figure, (roc, pr, calibration) = pyplot().subplots(1, 3, figsize=(13.5, 4.2))
    for role, curves in evaluation.curves.items():
        auc = evaluation.metrics.get(OVERALL, {}).get(AUC.name, {}).get(role)
        label = role if auc is None else f'{role} (AUC {auc:.3f})'
        if 'roc' in curves:
            roc.plot(*curves['roc'], label=label, **STYLE[role])
        if 'pr' in curves:
            pr.plot(*curves['pr'], label=role, **STYLE[role])
        if 'calibration' in curves:
            predicted, observed, counts = zip(*curves['calibration'])
            calibration.plot(predicted, observed, marker='o', label=role, **STYLE[role])
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
    for side, bound in zip(('min', 'max'), calibration_bound or ()):
        if bound:
            calibration.plot([0, top], [0, top / bound], color='#d93025', linestyle='--',
                             linewidth=1, label=f'calibration {side} {bound:g}')
    calibration.set(title=f'Calibration ({CALIBRATION_BINS} prediction bins, n per point)',
                    xlabel='mean prediction', ylabel='observed rate')
    for axes in (roc, pr, calibration):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc='best', fontsize=8)
    return svg(figure)
