"""BlessingGate: blesses the candidate model only when every task's Evaluator blessed it.

TFX's Evaluator judges one EvalConfig; an MMOE has one per task. The gate reads each task's TFMA
validation result and writes one `ModelBlessing` for the model as a whole, which the Pusher and the
latest-blessed-model Resolver use. Per task it records the verdict and, on refusal, the failing
metrics with their values and bounds: as artifact properties (`verdict_<task>`) and in `verdict.json`
inside the blessing.
"""

import json
import os
from typing import Dict, List

import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tensorflow_model_analysis.writers import eval_config_writer
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils

VERDICT_FILE = 'verdict.json'
COMPONENT_ID = 'BlessingGate'


def task_of(evaluation_uri: str) -> str:
    """The task an Evaluator judged: the prediction key of its candidate model spec."""
    eval_config, _, _, _ = eval_config_writer.load_eval_run(evaluation_uri)
    return next(spec.prediction_key for spec in eval_config.model_specs if not spec.is_baseline)


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


def describe(verdict: Dict) -> str:
    """One line: 'blessed', or 'refused: AUC = 0.4812 on Overall (bound ...)' per failure."""
    if verdict['blessed']:
        return 'blessed'
    if verdict.get('reason'):
        return 'refused: ' + verdict['reason']
    reasons = [
        f"{f['metric']}{' change' if f['is_change'] else ''} = "
        f"{f['value'] if f['value'] is None else round(f['value'], 4)} on {f['slice']} "
        f"(bound {json.dumps(f['threshold'], sort_keys=True)})"
        for f in verdict['failures']]
    if verdict.get('missing_thresholds'):
        reasons.append('no threshold could be checked (a change threshold alone needs a baseline)')
    return 'refused: ' + ('; '.join(reasons) or 'the Evaluator did not validate the model')


@component
def BlessingGate(
        model: InputArtifact[standard_artifacts.Model],
        evaluations: InputArtifact[List[standard_artifacts.ModelEvaluation]],
        blessing: OutputArtifact[standard_artifacts.ModelBlessing],
        task_names: Parameter[str]):
    """Blesses `model` when each task in `task_names` (a JSON list) has a validated evaluation."""
    evaluation_uris = {task_of(evaluation.uri): evaluation.uri for evaluation in evaluations}
    verdicts = {task: task_verdict(uri) for task, uri in evaluation_uris.items()}
    for task in json.loads(task_names):
        verdicts.setdefault(task, {'blessed': False, 'failures': [],
                                   'reason': f'no evaluation for task {task!r}'})
    blessed = all(verdict['blessed'] for verdict in verdicts.values())

    for task, verdict in verdicts.items():
        blessing.set_string_custom_property(f'verdict_{task}', describe(verdict))
    blessing.set_int_custom_property('blessed', int(blessed))
    blessing.set_string_custom_property('current_model', model.uri)
    blessing.set_int_custom_property('current_model_id', model.id)
    io_utils.write_string_file(
        os.path.join(blessing.uri, VERDICT_FILE),
        json.dumps({'blessed': blessed, 'model': model.uri, 'evaluations': evaluation_uris,
                    'tasks': verdicts}, indent=2))
    # The same marker files TFX's Evaluator writes, for tools that look for them.
    io_utils.write_string_file(
        os.path.join(blessing.uri, 'BLESSED' if blessed else 'NOT_BLESSED'), '')
