"""One TFMA EvalConfig per task, generated from the pipeline config."""

import json
import os
from typing import Dict, Optional

import tensorflow as tf
import tensorflow_model_analysis as tfma

from components import group_auc, grouped_evaluation, intervals
from pipeline.config import ConfigError, PipelineConfig, Task
from pipeline.datasets import ecommerce
from trainer_module.task_types import Metric

# TFMA metrics (by the class names the task types give) that the Evaluators compute with one of
# ours under the same name: TFMA's ExampleCount and the Keras BinaryCrossentropy read one example
# per extract, and the Evaluators give their metrics groups of examples
# (components/grouped_evaluation.py).
GROUPED_METRICS = {'ExampleCount': grouped_evaluation.GroupedExampleCount,
                   'BinaryCrossentropy': grouped_evaluation.GroupedBinaryCrossentropy}
# Metrics TFMA does not have.
OUR_METRICS = {**GROUPED_METRICS, 'GroupAUC': group_auc.GroupAUC}


def _metric(name: str, **fields) -> tfma.MetricConfig:
    if name in OUR_METRICS:
        return tfma.MetricConfig(class_name=OUR_METRICS[name].__name__,
                                 module=OUR_METRICS[name].__module__, **fields)
    return tfma.MetricConfig(class_name=name, **fields)


def evaluator_id(task_name: str) -> str:
    return f'Evaluator.{task_name}'


def _metric_config(metric: Metric, group_by: Optional[str], **fields) -> tfma.MetricConfig:
    """TFMA's config of `metric`, with its grouping column when it is computed within groups."""
    if metric.needs_groups:
        fields['config'] = json.dumps({'group_by': group_by})
    return _metric(metric.tfma_class, **fields)


def _gated_metric(task: Task, group_by: Optional[str]) -> tfma.MetricConfig:
    """The metric the Evaluator blesses on, over all eval examples (the Overall slice; the slices'
    values are shown, not gated: a small slice's metric is noise): its value bound and, for
    `change_test: absolute`, a change bound against the baseline, which TFX ignores while there is
    no baseline yet. TFMA checks a change bound on the point estimate only: `significant` changes
    and calibration bounds are judged by the BlessingGate, on the intervals of `_intervals()`."""
    metric, gate = task.gated_metric, task.gate
    if metric.higher_is_better:
        direction = tfma.MetricDirection.HIGHER_IS_BETTER
        value_threshold = tfma.GenericValueThreshold(lower_bound={'value': task.bound})
        allowed_change = -gate.max_decrease
    else:
        direction = tfma.MetricDirection.LOWER_IS_BETTER
        value_threshold = tfma.GenericValueThreshold(upper_bound={'value': task.bound})
        allowed_change = gate.max_decrease
    change_threshold = (tfma.GenericChangeThreshold(direction=direction,
                                                    absolute={'value': allowed_change})
                        if gate.change_test == 'absolute' else None)
    threshold = tfma.MetricThreshold(value_threshold=value_threshold,
                                     change_threshold=change_threshold)
    return _metric_config(metric, group_by, per_slice_thresholds=[
        tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)])


def interval_tests(task: Task) -> dict:
    """What the BlessingGate judges on the task's intervals: the change of its gated metric from
    the baseline, and its calibration bound."""
    metric, gate = task.gated_metric, task.gate
    return {'test': gate.change_test, 'metric': metric.name, 'direction': metric.direction,
            'max_decrease': gate.max_decrease, 'confidence': gate.confidence,
            'binary_labels': task.kind.binary_labels,
            'calibration': ([gate.calibration.min, gate.calibration.max]
                            if (gate.calibration.min, gate.calibration.max) != (None, None)
                            else None)}


def _intervals(task: Task, group_by: Optional[str],
               sample_space: Optional[str]) -> tfma.MetricConfig:
    """Intervals of the task's metrics and of the paired change from the baseline. Its config
    also names the task's sample space, which the Evaluators' grouped extractor keeps alone
    (components/grouped_evaluation.py)."""
    return tfma.MetricConfig(class_name=intervals.Intervals.__name__,
                             module=intervals.__name__,
                             config=json.dumps({'task_type': task.type,
                                                'gated': task.gated_metric.name,
                                                'confidence': task.gate.confidence,
                                                'group_by': group_by,
                                                grouped_evaluation.SAMPLE_SPACE: sample_space}))


def eval_config(config: PipelineConfig, task: Task) -> tfma.EvalConfig:
    group_by = config.evaluation.group_by
    gated = task.gated_metric
    # The type's other metrics with intervals (AUC beside a GAUC gate, GAUC beside an AUC gate
    # when there are groups), shown, not gated.
    shown = [_metric_config(metric, group_by) for metric in task.kind.interval_metrics
             if metric.name != gated.name and (group_by is not None or not metric.needs_groups)]
    return tfma.EvalConfig(
        # A generic SavedModel: TFMA otherwise tries it as a Keras model first, and revives the
        # Keras model once per extractor and model (docs/performance.md has what that cost).
        model_specs=[tfma.ModelSpec(signature_name='serving_default', label_key=task.label,
                                    prediction_key=task.name, model_type=tfma.TF_GENERIC)],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[feature])
                                              for feature in config.slice_features],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[_metric(name) for name in task.kind.reported_metrics] + shown
            + [_gated_metric(task, group_by),
               _intervals(task, group_by, config.sample_space(task))])])


def bayes_aucs(config: PipelineConfig, eval_pattern: Optional[str] = None) -> Dict[str, float]:
    """{task: the best AUC any model can reach} where the data comes from the bundled generator,
    whose `bayes_auc.json` lies beside the eval files (`eval_pattern`, e.g. the judged span's, or
    the config's `eval_csv_pattern`) or in the data directory; tasks match by label."""
    directories = [config.data]
    eval_pattern = eval_pattern or config.eval_csv_pattern
    if eval_pattern:
        directories.insert(0, os.path.dirname(os.path.join(config.data, eval_pattern)))
    for directory in directories:
        path = os.path.join(directory, ecommerce.BAYES_AUC_NAME)
        try:
            if not tf.io.gfile.exists(path):
                continue
            with tf.io.gfile.GFile(path) as f:
                text = f.read()
        except tf.errors.OpError:  # a store this machine cannot read: no reference line
            return {}
        by_label = {ecommerce.TASK_LABELS[name]: value
                    for name, value in _expected_aucs(text, path).items()
                    if name in ecommerce.TASK_LABELS}
        return {task.name: by_label[task.label] for task in config.tasks
                if task.kind.calibration is not None and task.label in by_label}
    return {}


def _expected_aucs(text: str, path: str) -> Dict[str, float]:
    """{task of the generator: its expected Bayes AUC} from a `bayes_auc.json`'s text, or a
    ConfigError naming the file and what is wrong with it."""
    try:
        report = json.loads(text)['bayes_auc']
        aucs = {name: values['expected'] for name, values in report.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f'{path}: not a Bayes AUC report ({{"bayes_auc": {{task: {{"expected": '
                          f'AUC}}}}}}, as pipeline.datasets.ecommerce writes it): '
                          f'{type(error).__name__}: {error}') from None
    for name, auc in aucs.items():
        if isinstance(auc, bool) or not isinstance(auc, (int, float)) or not 0 <= auc <= 1:
            raise ConfigError(f'{path}: bayes_auc.{name}.expected: an AUC in [0, 1], got {auc!r}')
    return aucs
