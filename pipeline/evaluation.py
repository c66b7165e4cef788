"""One TFMA EvalConfig per task, generated from the pipeline config."""

import json
import os
from typing import Dict

import tensorflow as tf
import tensorflow_model_analysis as tfma

from components import grouped_evaluation, intervals
from pipeline.config import ConfigError, PipelineConfig, Task
from pipeline.datasets import ecommerce

BINARY_METRICS = ('ExampleCount', 'AUCPrecisionRecall', 'BinaryCrossentropy', 'Calibration',
                  'MeanLabel', 'MeanPrediction', 'CalibrationPlot', 'ConfusionMatrixPlot')
REGRESSION_METRICS = ('ExampleCount', 'MeanAbsoluteError', 'MeanLabel', 'MeanPrediction')
# The metrics above whose TFMA (or Keras) class reads one example per extract; the Evaluators give
# their metrics groups of examples (components/grouped_evaluation.py).
GROUPED_METRICS = {'ExampleCount': grouped_evaluation.GroupedExampleCount,
            'BinaryCrossentropy': grouped_evaluation.GroupedBinaryCrossentropy}


def _metric(name: str) -> tfma.MetricConfig:
    if name in GROUPED_METRICS:
        return tfma.MetricConfig(class_name=GROUPED_METRICS[name].__name__,
                                 module=grouped_evaluation.__name__)
    return tfma.MetricConfig(class_name=name)


def evaluator_id(task_name: str) -> str:
    return f'Evaluator.{task_name}'


def _gated_metric(task: Task) -> tfma.MetricConfig:
    """The metric the Evaluator blesses on, over all eval examples (the Overall slice; the slices'
    values are shown, not gated: a small slice's AUC is noise): a value bound (when set) and, for
    `change_test: absolute`, a change bound against the baseline, which TFX ignores while there is
    no baseline yet. TFMA checks a change bound on the point estimate only: `significant` changes
    are judged by the BlessingGate, on the interval of `_intervals()`."""
    if task.type == 'binary':
        name, direction = 'AUC', tfma.MetricDirection.HIGHER_IS_BETTER
        value_threshold = tfma.GenericValueThreshold(lower_bound={'value': task.min_auc})
        allowed_change = -task.max_decrease
    else:
        name, direction = 'MeanSquaredError', tfma.MetricDirection.LOWER_IS_BETTER
        value_threshold = (tfma.GenericValueThreshold(upper_bound={'value': task.max_mse})
                           if task.max_mse is not None else None)
        allowed_change = task.max_decrease
    change_threshold = (tfma.GenericChangeThreshold(direction=direction,
                                                    absolute={'value': allowed_change})
                        if task.change_test == 'absolute' else None)
    threshold = tfma.MetricThreshold(value_threshold=value_threshold,
                                     change_threshold=change_threshold)
    return tfma.MetricConfig(class_name=name, per_slice_thresholds=[
        tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)])


def change_test(task: Task) -> dict:
    """What the BlessingGate needs to judge the task's change from the baseline on its interval."""
    return {'test': task.change_test, 'metric': intervals.GATED_METRIC[task.type],
            'direction': 'higher' if task.type == 'binary' else 'lower',
            'max_decrease': task.max_decrease, 'confidence': task.confidence}


def _intervals(task: Task) -> tfma.MetricConfig:
    """Intervals of the task's metrics and of the paired change from the baseline."""
    return tfma.MetricConfig(class_name=intervals.Intervals.__name__,
                             module=intervals.__name__,
                             config=json.dumps({'task_type': task.type,
                                                'confidence': task.confidence}))


def eval_config(config: PipelineConfig, task: Task) -> tfma.EvalConfig:
    other_metrics = BINARY_METRICS if task.type == 'binary' else REGRESSION_METRICS
    return tfma.EvalConfig(
        # A generic SavedModel: TFMA otherwise tries it as a Keras model first, and revives the
        # Keras model once per extractor and model (docs/performance.md has what that cost).
        model_specs=[tfma.ModelSpec(signature_name='serving_default', label_key=task.label,
                                    prediction_key=task.name, model_type=tfma.TF_GENERIC)],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[feature])
                                              for feature in config.slice_features],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[_metric(name) for name in other_metrics]
            + [_gated_metric(task), _intervals(task)])])


def bayes_aucs(config: PipelineConfig) -> Dict[str, float]:
    """{task: the best AUC any model can reach} where the data comes from the bundled generator,
    whose `bayes_auc.json` lies beside the eval files (or the data); tasks match by label."""
    directories = [config.data]
    if config.eval_csv_pattern:
        directories.insert(0, os.path.dirname(os.path.join(config.data, config.eval_csv_pattern)))
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
                if task.type == 'binary' and task.label in by_label}
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
