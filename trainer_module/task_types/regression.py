"""The regression task: a value (a watch time, a rating), trained and judged on the squared error."""

from trainer_module.task_types import statistics
from trainer_module.task_types.base import Metric, TaskType


def _mse(labels, predictions, groups, confidence):
    del groups
    return statistics.mse_interval(labels, predictions, confidence)


def _mse_change(labels, candidate, baseline, groups, confidence):
    del groups
    return statistics.mse_change_interval(labels, candidate, baseline, confidence)


# No default ceiling: what predicting the label's mean achieves (its variance) depends on the data.
MSE = Metric('mean_squared_error', 'MSE', 'MeanSquaredError', higher_is_better=False,
             value_range=(0.0, float('inf')), interval=_mse, change_interval=_mse_change)

REGRESSION = TaskType(
    name='regression', deepctr_task='regression', loss='MeanSquaredError',
    training_metrics=(('RootMeanSquaredError', 'rmse'),),
    reported_metrics=('ExampleCount', 'MeanAbsoluteError', 'MeanLabel', 'MeanPrediction'),
    gated_metrics=(MSE,), uncertainty_scale=0.5)
