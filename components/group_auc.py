"""Group AUC as a TFMA metric: `gauc`, the AUC within each group's eval examples (a user's
impressions, the groups of `evaluation.group_by`) averaged with the groups' example counts, beside
`gauc_groups` (the groups with both classes, the only ones that have an AUC) and `gauc_coverage`
(the share of the slice's examples in those groups). TFMA and DeepCTR have no such metric.

Computed for every model the Evaluator runs (so TFMA adds the candidate's change from the
baseline, and a change threshold applies) and per slice, on groups of examples
(components/grouped_evaluation.py keeps each example's group id in its extracts). The arithmetic is
trainer_module/task_types/group_auc.py's; the interval is the Intervals metric's.
"""

from typing import Dict, Iterable

from tensorflow_model_analysis.metrics import metric_types, metric_util

from components.grouped_evaluation import ArraysCombiner, group_ids, labels_and_predictions
from trainer_module.task_types import group_auc

NAME = 'gauc'
GROUPS = f'{NAME}_groups'
COVERAGE = f'{NAME}_coverage'


class GroupAUC(metric_types.Metric):
    """`gauc`, `gauc_groups` and `gauc_coverage` of each model and output, within the groups of
    `group_by`."""

    def __init__(self, group_by: str = '', name: str = NAME):
        super().__init__(self._computations, group_by=group_by, name=name)

    @staticmethod
    def _computations(group_by: str, eval_config=None, model_names: Iterable[str] = ('',),
                      output_names: Iterable[str] = ('',), name: str = NAME
                      ) -> metric_types.MetricComputations:
        if not group_by:
            raise ValueError(f'{NAME}: no group_by column (evaluation.group_by)')
        computations = []
        for model_name in model_names or ('',):
            for output_name in output_names or ('',):
                keys = {field: metric_types.MetricKey(name=key, model_name=model_name,
                                                      output_name=output_name)
                        for field, key in (('value', name), ('groups', GROUPS),
                                           ('coverage', COVERAGE))}
                computations.append(metric_types.MetricComputation(
                    keys=list(keys.values()),
                    preprocessors=[_LabelsPredictionsGroups(eval_config, model_name,
                                                            output_name, group_by)],
                    combiner=_GroupAUCCombiner(keys)))
        return computations


class _LabelsPredictionsGroups(metric_types.Preprocessor):
    """Per extract: (labels, predictions, group ids), one entry per example."""

    def __init__(self, eval_config, model_name, output_name, group_by):
        super().__init__(name=f'_gauc_inputs_{model_name}_{output_name}_{group_by}')
        self._eval_config, self._model_name = eval_config, model_name
        self._output_name, self._group_by = output_name, group_by

    def process(self, extracts):
        inputs = metric_util.to_standard_metric_inputs(extracts)
        labels, predictions, _ = labels_and_predictions(inputs, self._eval_config,
                                                        self._model_name, self._output_name)
        yield labels, predictions, group_ids(extracts, self._group_by)


class _GroupAUCCombiner(ArraysCombiner):
    """The group AUC of a slice's labels, predictions and group ids."""

    def __init__(self, keys: Dict[str, metric_types.MetricKey]):
        self._keys = keys

    def output(self, labels, predictions, groups) -> Dict[metric_types.MetricKey, float]:
        found = group_auc.group_aucs(labels, predictions, groups)
        # No group with both classes: NaN, which the gate reports as missing with the reason.
        return {self._keys['value']: float(found.gauc[0]),
                self._keys['groups']: float(found.groups_used),
                self._keys['coverage']: found.row_share}


metric_types.register_metric(GroupAUC)
