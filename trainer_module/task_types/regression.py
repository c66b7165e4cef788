"""The regression task: a value (a watch time, a rating), trained and judged on the squared error."""

from trainer_module.task_types import statistics
from trainer_module.task_types.base import Metric, TaskType, TrainingMetric, ignoring_groups

# No default ceiling: what predicting the label's mean achieves (its variance) depends on the data.
MSE = Metric('mean_squared_error', 'MSE', 'MeanSquaredError', higher_is_better=False,
             value_range=(0.0, float('inf')), interval=ignoring_groups(statistics.mse_interval),
             change_interval=ignoring_groups(statistics.mse_change_interval))

REGRESSION = TaskType(
    name='regression', deepctr_task='regression', loss='MeanSquaredError',
    training_metrics=(TrainingMetric('RootMeanSquaredError', 'rmse', higher_is_better=False),),
    reported_metrics=('ExampleCount', 'MeanAbsoluteError', 'MeanLabel', 'MeanPrediction'),
    gated_metrics=(MSE,), uncertainty_scale=0.5)
