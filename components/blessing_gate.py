"""BlessingGate: blesses the candidate model only when every task's Evaluator blessed it.

TFX's Evaluator judges one EvalConfig; an MMOE has one per task. The gate takes each task's
evaluation as an input of its own (`<task>_evaluation`: KFP v2 compiles no union of channels), reads
its TFMA validation result and writes one `ModelBlessing` for the model as a whole, which the Pusher
and the latest-blessed-model Resolver use. Per task it records the verdict and, on refusal, the
failing metrics with their values and bounds: as artifact properties (`verdict_<task>`) and in
`verdict.json` inside the blessing.

A task with `change_test: significant` is judged here against its baseline, on the paired interval
of the change that its Evaluator computed (`components/intervals.py`): refused only when the whole
interval is worse than `max_decrease`. TFMA's validator would judge the point estimate only.
"""

import json
import math
import os
from typing import Dict, Iterable, List, Optional, Tuple

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from components import group_auc, intervals
from components.span_window import SPAN
from trainer_module.task_types.binary import AUC, CALIBRATION
from trainer_module.task_types.regression import MSE

VERDICT_FILE = 'verdict.json'
COMPONENT_ID = 'BlessingGate'
# Set to 1 on the gate's blessings only (TFX's Evaluators write `blessed` too): what tells a
# resolver that cannot filter on the producer, such as KFP v2's queries, that all tasks blessed.
ALL_TASKS_BLESSED = 'all_tasks_blessed'


def evaluation_key(task: str) -> str:
    """The gate's input key of `task`'s evaluation: `<task>_evaluation`."""
    return f'{task}_evaluation'


def overall_metrics(evaluation_uri: str) -> Dict[str, float]:
    """Overall metrics of the candidate model in a TFMA output: {metric name: value}."""
    result = tfma.load_eval_result(evaluation_uri)
    for slice_key, metrics in result.slicing_metrics:
        if slice_key == ():
            candidate = metrics.get('', {}).get('', {})
            # float(): TFMA's JSON writes a NaN (a group AUC without groups) as 'NaN'.
            return {name: float(value['doubleValue']) for name, value in candidate.items()
                    if 'doubleValue' in value}
    return {}


def overall_intervals(evaluation_uri: str) -> Dict[str, Dict]:
    """The intervals in a TFMA output, overall: {'<metric>' or '<metric> change': {'value', 'lower',
    'upper'}} (`components/intervals.py`; the change only when there was a baseline)."""
    found = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        if tfma.slicer.deserialize_slice_key(per_slice.slice_key) != ():
            continue
        for key_and_value in per_slice.metric_keys_and_values:
            key, interval = key_and_value.key, key_and_value.confidence_interval
            if not key.name.endswith(intervals.SUFFIX) or not interval.HasField('lower_bound'):
                continue
            metric = key.name[:-len(intervals.SUFFIX)] + (' change' if key.is_diff else '')
            found[metric] = {'value': key_and_value.value.double_value.value,
                             'lower': interval.lower_bound.double_value.value,
                             'upper': interval.upper_bound.double_value.value}
    return found


def _change_beyond_bound(change: Dict, test: Dict) -> bool:
    """Whether the whole interval of the change is worse than the bound."""
    if test['direction'] == 'higher':
        return change['upper'] < -test['max_decrease']
    return change['lower'] > test['max_decrease']


def _judge_change(verdict: Dict, task_intervals: Dict[str, Dict], test: Dict):
    """Adds the interval of the gated metric's change to `verdict` (and to TFMA's failure of its
    change bound); for `significant` tests, refuses when the whole interval is beyond the bound."""
    change = task_intervals.get(f"{test['metric']} change")
    if change is None or not all(math.isfinite(change[k]) for k in ('value', 'lower', 'upper')):
        return
    verdict['change'] = {'metric': test['metric'], 'confidence': test['confidence'], **change}
    bound_interval = {'interval': [change['lower'], change['upper']],
                      'confidence': test['confidence']}
    for failure in verdict['failures']:
        if failure['is_change'] and failure['slice'] == 'Overall' and \
                failure['metric'] == test['metric']:
            failure.update(bound_interval)
    if test['test'] == 'significant' and _change_beyond_bound(change, test):
        sign = -1 if test['direction'] == 'higher' else 1
        verdict['blessed'] = False
        verdict['failures'].append({
            'slice': 'Overall', 'metric': test['metric'], 'is_change': True,
            'value': change['value'], **bound_interval,
            'threshold': {'changeThreshold': {'absolute': sign * test['max_decrease'],
                                              'test': 'significant'}},
            'message': f"the whole {test['confidence']:.0%} interval of the change is beyond "
                       f"{sign * test['max_decrease']}"})


def _judge_calibration(verdict: Dict, task_intervals: Dict[str, Dict], test: Dict):
    """Refuses when the whole interval of the calibration lies outside the task's bound."""
    low, high = test.get('calibration') or (None, None)
    found = task_intervals.get(CALIBRATION.name)
    if (low, high) == (None, None) or found is None or \
            not all(math.isfinite(found[k]) for k in ('lower', 'upper')):
        return
    if (low is not None and found['upper'] < low) or (high is not None and found['lower'] > high):
        verdict['blessed'] = False
        verdict['failures'].append({
            'slice': 'Overall', 'metric': CALIBRATION.name, 'is_change': False,
            'value': found['value'], 'interval': [found['lower'], found['upper']],
            'confidence': test['confidence'],
            'threshold': {'calibration': {'min': low, 'max': high}},
            'message': f"the whole {test['confidence']:.0%} interval of the calibration is "
                       f"outside [{low}, {high}]"})


def _missing_reason(task: str, metrics: Dict[str, float], test: Dict) -> Optional[str]:
    """Why a task's evaluation means nothing: a binary task's metrics need both classes in the
    eval split, and a group AUC at least one group that holds both."""
    if test.get('binary_labels') and metrics.get('mean_label') == 0:
        return f'no positives in eval for {task}'
    if test.get('binary_labels') and metrics.get('mean_label') == 1:
        return f'no negatives in eval for {task}'
    if test.get('metric') == group_auc.NAME and not metrics.get(group_auc.GROUPS):
        return (f'{group_auc.NAME} is missing for {task}: no group of the eval split '
                f'(evaluation.group_by) holds both classes')
    return None


def task_verdict(evaluation_uri: str) -> Dict:
    """{'blessed': bool, 'failures': [{'slice', 'metric', 'is_change', 'value', 'threshold',
    'message'}], 'missing_thresholds': bool} from the TFMA validation result an Evaluator wrote."""
    result = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        slice_key = tfma.slicer.deserialize_slice_key(per_slice.slice_key)
        for failure in per_slice.failures:
            value = failure.metric_value
            failures.append({
                'slice': tfma.slicer.stringify_slice_key(slice_key) or 'Overall',
                'metric': failure.metric_key.name,
                'is_change': bool(failure.metric_key.is_diff),
                'value': value.double_value.value if value.HasField('double_value') else None,
                'threshold': json_format.MessageToDict(failure.metric_threshold),
                'message': failure.message,
            })
    return {'blessed': bool(result.validation_ok), 'failures': failures,
            'missing_thresholds': bool(result.missing_thresholds)}


def gated_metric(verdict: Dict, metrics: Iterable[str]) -> str:
    """The metric a task was gated on: the one its verdict names, or for verdicts written before
    verdicts named it, the AUC where there is one, else the mean squared error."""
    named = (verdict.get('gate') or {}).get('metric')
    if named:
        return named
    return AUC.name if AUC.name in set(metrics) else MSE.name


def describe(verdict: Dict) -> str:
    """One line: 'blessed', or 'refused: AUC = 0.4812 on Overall (bound ...)' per failure."""
    if verdict['blessed']:
        return 'blessed'
    if verdict.get('reason'):
        return 'refused: ' + verdict['reason']
    reasons = [
        f"{f['metric']}{' change' if f['is_change'] else ''} = "
        f"{f['value'] if f['value'] is None else round(f['value'], 4)} on {f['slice']}"
        + (f", {f['confidence']:.0%} interval [{f['interval'][0]:+.4f}, {f['interval'][1]:+.4f}]"
           if f.get('interval') else '')
        + f" (bound {json.dumps(f['threshold'], sort_keys=True)})"
        for f in verdict['failures']]
    if verdict.get('missing_thresholds'):
        reasons.append('no threshold could be checked (a change threshold alone needs a baseline)')
    return 'refused: ' + ('; '.join(reasons) or 'the Evaluator did not validate the model')


def decide(tasks: List[str], evaluator_verdicts: Dict[str, Dict],
           metrics: Dict[str, Dict[str, float]],
           task_intervals: Optional[Dict[str, Dict[str, Dict]]] = None,
           interval_tests: Optional[Dict[str, Dict]] = None) -> Tuple[bool, Dict[str, Dict]]:
    """The gate's decision on plain data: `evaluator_verdicts` {task: `task_verdict()`},
    `metrics` {task: `overall_metrics()`} and `task_intervals` {task: `overall_intervals()`} for the
    tasks whose Evaluator ran; `interval_tests` {task: `pipeline.evaluation.interval_tests()`}. Returns
    (blessed, {task: verdict}) for every task in `tasks`: blessed when every task's Evaluator
    blessed the model on an eval split with both classes and no `significant` change test refused
    it."""
    verdicts: Dict[str, Dict] = {}
    for task in tasks:
        if task not in evaluator_verdicts:
            verdicts[task] = {'blessed': False, 'failures': [],
                              'reason': f'no evaluation for task {task!r}'}
            continue
        verdicts[task] = dict(evaluator_verdicts[task])
        verdicts[task]['failures'] = [dict(f) for f in verdicts[task]['failures']]
        test = (interval_tests or {}).get(task, {})
        if test:
            # What the task was judged on, for the dashboards and the run summary.
            verdicts[task]['gate'] = {key: test.get(key) for key in ('metric', 'calibration')}
            found = (task_intervals or {}).get(task, {})
            _judge_change(verdicts[task], found, test)
            _judge_calibration(verdicts[task], found, test)
        # TFMA may bless an AUC computed on one class only; such an evaluation judges nothing.
        reason = _missing_reason(task, metrics.get(task, {}), test)
        if reason:
            verdicts[task].update(blessed=False, reason=reason)
    return all(verdict['blessed'] for verdict in verdicts.values()), verdicts


def judge(model: types.Artifact, evaluation_uris: Dict[str, str], tasks: List[str],
          interval_tests: Dict[str, Dict], blessing: types.Artifact, span: Optional[int] = None):
    """Judges the TFMA outputs `evaluation_uris` {task: uri} and writes the verdict; `span`: the
    span the evaluations read, where the data is by span."""
    blessed, verdicts = decide(
        tasks, {task: task_verdict(uri) for task, uri in evaluation_uris.items()},
        {task: overall_metrics(uri) for task, uri in evaluation_uris.items()},
        {task: overall_intervals(uri) for task, uri in evaluation_uris.items()}, interval_tests)
    write_verdict(model, evaluation_uris, blessed, verdicts, blessing, span)


def write_verdict(model: types.Artifact, evaluation_uris: Dict[str, str], blessed: bool,
                  verdicts: Dict[str, Dict], blessing: types.Artifact, span: Optional[int] = None):
    """Into `blessing`: properties (the verdict per task, `blessed`, the model, the span judged
    on), verdict.json and a BLESSED or NOT_BLESSED marker."""
    for task, verdict in verdicts.items():
        blessing.set_string_custom_property(f'verdict_{task}', describe(verdict))
    blessing.set_int_custom_property('blessed', int(blessed))
    blessing.set_int_custom_property(ALL_TASKS_BLESSED, int(blessed))
    blessing.set_string_custom_property('current_model', model.uri)
    blessing.set_int_custom_property('current_model_id', model.id)
    if span is not None:
        blessing.set_int_custom_property(SPAN, span)
    io_utils.write_string_file(
        os.path.join(blessing.uri, VERDICT_FILE),
        json.dumps({'blessed': blessed, 'model': model.uri, 'evaluations': evaluation_uris,
                    'tasks': verdicts, **({'span': span} if span is not None else {})},
                   indent=2))
    # The same marker files TFX's Evaluator writes, for tools that look for them.
    io_utils.write_string_file(
        os.path.join(blessing.uri, 'BLESSED' if blessed else 'NOT_BLESSED'), '')


class Executor(evaluator_executor.Executor):
    """An Evaluator's executor class only in name: TFX's KFP v2 container entrypoint rewrites the
    `current_model_id` of an Evaluator executor's `blessing` into the model's artifact name, which
    the compiled latest-blessed-model query matches (`name="{{...current_model_id}}"`). Without
    it, the id there is the entrypoint's hash of that name and the second run on Kubeflow or
    Vertex found no baseline (tests/test_kubeflow_executed.py). Local runs keep MLMD's ids."""

    def Do(self, input_dict, output_dict, exec_properties):
        """Judges `input_dict`'s model on its tasks' evaluations and writes the verdict into
        `output_dict`'s blessing; returns None."""
        tasks = json.loads(exec_properties['task_names'])
        evaluation_uris = {task: input_dict[evaluation_key(task)][0].uri for task in tasks
                           if input_dict.get(evaluation_key(task))}
        judge(artifact_utils.get_single_instance(input_dict['model']), evaluation_uris, tasks,
              json.loads(exec_properties.get('interval_tests') or '{}'),
              artifact_utils.get_single_instance(output_dict['blessing']),
              exec_properties.get(SPAN))


class BlessingGateSpec(types.ComponentSpec):
    """The inputs every gate has; each instance adds `<task>_evaluation` per task."""
    PARAMETERS = {'task_names': ExecutionParameter(type=str),
                  # {task: pipeline.evaluation.interval_tests()}, as JSON.
                  'interval_tests': ExecutionParameter(type=str, optional=True),
                  # The span the evaluations read (pipeline/spans.py), recorded on the blessing.
                  SPAN: ExecutionParameter(type=int, optional=True)}
    INPUTS = {'model': ChannelParameter(type=standard_artifacts.Model)}
    OUTPUTS = {'blessing': ChannelParameter(type=standard_artifacts.ModelBlessing)}


class BlessingGate(base_component.BaseComponent):
    """The gate of one model (`model`) over its tasks' evaluations; outputs `blessing`, one
    ModelBlessing for all tasks."""

    SPEC_CLASS = BlessingGateSpec
    # A Beam executor spec because the executor's class is one (it runs no Beam pipeline).
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, model: types.BaseChannel, evaluations: Dict[str, types.BaseChannel],
                 interval_tests: Optional[Dict[str, Dict]] = None, span: Optional[int] = None):
        """`evaluations`: {task: its Evaluator's `evaluation` channel}, in task order;
        `interval_tests`: {task: `pipeline.evaluation.interval_tests()`}; `span`: the span they
        judge on, where the data is by span."""
        spec_class = type(BlessingGateSpec.__name__, (BlessingGateSpec,), {'INPUTS': {
            **BlessingGateSpec.INPUTS,
            **{evaluation_key(task): ChannelParameter(type=standard_artifacts.ModelEvaluation)
               for task in evaluations}}})
        super().__init__(spec_class(
            model=model, task_names=json.dumps(list(evaluations)),
            interval_tests=json.dumps(interval_tests or {}, sort_keys=True), **{SPAN: span},
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
            **{evaluation_key(task): channel for task, channel in evaluations.items()}))
