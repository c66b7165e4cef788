"""The binary task: a probability of a 0/1 label (a click, a conversion), trained on the cross
entropy and judged on AUC, group AUC or calibration."""

from trainer_module.task_types import group_auc, statistics
from trainer_module.task_types.base import Metric, TaskType, TrainingMetric, ignoring_groups

AUC = Metric('auc', 'AUC', 'AUC', higher_is_better=True, value_range=(0.0, 1.0),
             interval=ignoring_groups(statistics.auc_interval),
             change_interval=ignoring_groups(statistics.auc_change_interval),
             # A drop of 0.5 takes a perfect model to chance: a larger bound never refuses a model
             # that still ranks better than a coin.
             max_decrease_limit=0.5, default_bound=0.5)
# The AUC within each group's examples (a user's impressions), averaged with the groups' example
# counts (Zhou et al., KDD 2018): a model that only ranks heavy users above light ones scores well
# on AUC, not here. Its value comes from components/group_auc.py's TFMA metric.
GAUC = Metric('gauc', 'GAUC', 'GroupAUC', higher_is_better=True, value_range=(0.0, 1.0),
              interval=group_auc.gauc_interval, change_interval=group_auc.gauc_change_interval,
              max_decrease_limit=0.5, needs_groups=True, default_bound=0.5)
# Mean prediction / mean label (TFMA's `calibration`): best at 1; bounded by an interval, not
# gated on as the others are.
CALIBRATION = Metric('calibration', 'calibration', 'Calibration', higher_is_better=None,
                     value_range=(0.0, float('inf')),
                     interval=ignoring_groups(statistics.calibration_interval))

BINARY = TaskType(
    name='binary', deepctr_task='binary', loss='BinaryCrossentropy',
    # Keras' AUC: a Riemann sum over 200 thresholds, on every batch and on the whole
    # validation split at each evaluation.
    training_metrics=(TrainingMetric('AUC', 'auc', higher_is_better=True),),
    reported_metrics=('ExampleCount', 'AUCPrecisionRecall', 'BinaryCrossentropy', 'Calibration',
                      'MeanLabel', 'MeanPrediction', 'CalibrationPlot', 'ConfusionMatrixPlot'),
    gated_metrics=(AUC, GAUC), interval_metrics=(AUC, GAUC), calibration=CALIBRATION,
    binary_labels=True)
