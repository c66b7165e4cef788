"""What a pipeline run did, read back from ML Metadata: each component's execution, its state and
output artifacts, and the per-task evaluation results and blessing verdicts."""

import dataclasses
import json
import os
from typing import Dict, FrozenSet, List, NamedTuple, Optional

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import atomic_pusher, csv_example_gen
from components.anomaly_check import CheckedStatistics
from components.blessing_gate import COMPONENT_ID as GATE_ID
from components.blessing_gate import VERDICT_FILE, overall_metrics
from components.dashboard import COMPONENT_ID as DASHBOARD_ID
from components.span_window import SPAN, checked_examples, span_of
from components.trainer_executor import read_provenance
from pipeline.config import PipelineConfig
from pipeline.evaluation import evaluator_id
from trainer_module.settings import GATE_REPORT_DIR, GATE_REPORT_FILE
from trainer_module.vocabulary_report import read_vocabulary_report

_STATE_NAMES = {value: name for name, value in
                metadata_store_pb2.Execution.State.items()}


@dataclasses.dataclass
class NodeRun:
    node_id: str
    state: str  # COMPLETE, CACHED, FAILED, ...
    outputs: Dict[str, List[Dict]]  # output key -> [{'uri': ..., 'properties': {name: value}}]
    seconds: Optional[float]


def sqlite_store(metadata_path: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def latest_run(store: mlmd.MetadataStore, pipeline_name: str) -> Dict[str, NodeRun]:
    """{node id: NodeRun} for the newest run of `pipeline_name` in `store`."""
    runs = [context for context in store.get_contexts_by_type('pipeline_run')
            if any(parent.name == pipeline_name
                   for parent in store.get_parent_contexts_by_context(context.id))]
    if not runs:
        return {}
    run = max(runs, key=lambda context: context.create_time_since_epoch)
    executions = store.get_executions_by_context(run.id)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    output_ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    artifacts = {a.id: {'uri': a.uri, 'properties': _custom_properties(a)}
                 for a in store.get_artifacts_by_id(output_ids)}
    result = {}
    for execution in executions:
        node = next(context.name for context in store.get_contexts_by_execution(execution.id)
                    if context.type == 'node')
        node_id = node[len(pipeline_name) + 1:]
        outputs: Dict[str, List[Dict]] = {}
        for event in events:
            if event.execution_id == execution.id and event.type == metadata_store_pb2.Event.OUTPUT:
                outputs.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
        seconds = None
        if execution.last_update_time_since_epoch and execution.create_time_since_epoch:
            seconds = (execution.last_update_time_since_epoch
                       - execution.create_time_since_epoch) / 1000.0
        result[node_id] = NodeRun(node_id, _STATE_NAMES.get(execution.last_known_state, '?'),
                                  outputs, seconds)
    return result


class SpanRecord(NamedTuple):
    """What earlier runs did with data by span: `checked`, the spans whose examples passed the data
    checks (a training window may read them); `blessed`, the newest span the gate blessed a model
    on (the serving model's), None for none."""
    checked: FrozenSet[int]
    blessed: Optional[int]


def span_record(metadata_path: str, pipeline_name: str) -> SpanRecord:
    """The SpanRecord of `pipeline_name` in the store at `metadata_path` (none there yet: empty)."""
    if not os.path.exists(metadata_path):
        return SpanRecord(frozenset(), None)
    store = sqlite_store(metadata_path)
    context = store.get_context_by_type_and_name('pipeline', pipeline_name)
    if context is None:
        return SpanRecord(frozenset(), None)
    types = {t.id: t for t in store.get_artifact_types()}
    by_type: Dict[str, list] = {}
    for artifact in store.get_artifacts_by_context(context.id):
        if artifact.state == metadata_store_pb2.Artifact.LIVE:
            artifact_type = types[artifact.type_id]
            by_type.setdefault(artifact_type.name, []).append(
                artifact_utils.deserialize_artifact(artifact_type, artifact))
    checked = checked_examples(by_type.get(standard_artifacts.Examples.TYPE_NAME, []),
                               by_type.get(CheckedStatistics.TYPE_NAME, []))
    blessed = [span_of(b) for b in by_type.get(standard_artifacts.ModelBlessing.TYPE_NAME, [])
               if b.has_custom_property(SPAN) and b.get_int_custom_property('blessed') == 1]
    return SpanRecord(frozenset(checked), max(blessed, default=None))


def _custom_properties(artifact: metadata_store_pb2.Artifact) -> Dict:
    values = {}
    for name, value in artifact.custom_properties.items():
        kind = value.WhichOneof('value')
        values[name] = getattr(value, kind) if kind in ('int_value', 'double_value',
                                                        'string_value') else str(value)
    return values


def _bad_rows(nodes: Dict[str, NodeRun]) -> Optional[Dict]:
    """{'count', 'listed_in'}: the CSV rows ExampleGen set aside (bad_rows: skip)."""
    example_gen = nodes.get('CsvExampleGen')
    if not example_gen or not example_gen.outputs.get('examples'):
        return None
    properties = example_gen.outputs['examples'][0]['properties']
    return {'count': properties.get(csv_example_gen.BAD_ROWS_PROPERTY, 0),
            'listed_in': properties.get(csv_example_gen.BAD_ROWS_DIR_PROPERTY)}


def _model_report(model_uri: str) -> Dict:
    """What the Trainer learnt about the model beyond its weights: the tasks' learned
    log-variances (uncertainty loss weighting), each gate's use of the experts, the experts'
    pairwise similarity, warnings of expert collapse, and each vocabulary's size and OOV share
    per split (trainer_module/vocabulary_report.py)."""
    report = {'task_log_variance': read_provenance(model_uri).get('task_log_variance', {}),
              'gate_use': None, 'expert_similarity': None, 'warnings': [],
              'vocabularies': read_vocabulary_report(model_uri)}
    path = os.path.join(model_uri, GATE_REPORT_DIR, GATE_REPORT_FILE)
    if os.path.exists(path):
        with open(path) as f:
            gates = json.load(f)
        report.update({key: gates.get(key, report[key])
                       for key in ('gate_use', 'expert_similarity', 'warnings')})
    return report


# Where TF Serving listens for REST requests by default (--rest_api_port).
TF_SERVING_REST = 'http://localhost:8501'


def request_example(pushed_model: Optional[str], model_name: str) -> Optional[Dict]:
    """A pushed model's REST request example, and the curl line that sends it to a TF Serving
    that serves the serving directory as `model_name` (docs/serving.md)."""
    if not pushed_model:
        return None
    path = os.path.join(pushed_model, atomic_pusher.REQUEST_EXAMPLE_FILE)
    if not os.path.exists(path):
        return None
    return {'path': path,
            'curl': f'curl -d @{path} {TF_SERVING_REST}/v1/models/{model_name}:predict'}


def summarize(metadata_path: str, config: PipelineConfig) -> Dict:
    """The newest run: node states, per-task metrics and verdicts, the trained model with what
    decided it, the model it pushed (or the serving version that already is that model) with its
    REST request example, and the dashboards' index page."""
    nodes = latest_run(sqlite_store(metadata_path), config.pipeline_name)
    tasks = {}
    gate = nodes.get(GATE_ID)
    verdicts = {}
    if gate and gate.outputs.get('blessing'):
        with open(os.path.join(gate.outputs['blessing'][0]['uri'], VERDICT_FILE)) as f:
            verdicts = json.load(f)['tasks']
    for task in config.tasks:
        evaluator = nodes.get(evaluator_id(task.name))
        if not evaluator or not evaluator.outputs.get('evaluation'):
            continue
        uri = evaluator.outputs['evaluation'][0]['uri']
        tasks[task.name] = {'evaluation': uri, 'metrics': overall_metrics(uri),
                            'verdict': verdicts.get(task.name)}
    pushed, already_serving = None, None
    pusher = nodes.get('Pusher')
    if pusher and pusher.outputs.get('pushed_model'):
        properties = pusher.outputs['pushed_model'][0]['properties']
        if properties.get('pushed') == 1 and pusher.state == 'CACHED':
            # Nothing new: an earlier run pushed this very model, blessed on the same inputs.
            already_serving = properties.get('pushed_destination')
        elif properties.get('pushed') == 1:
            pushed = properties.get('pushed_destination')
        else:
            already_serving = properties.get(atomic_pusher.ALREADY_SERVING)
    trainer = nodes.get('Trainer')
    trained_model = None
    if trainer and trainer.outputs.get('model'):
        # What decided the model (trainer_executor): seed, data fingerprints, settings, versions.
        trained_model = dict(trainer.outputs['model'][0])
        trained_model.update(_model_report(trained_model['uri']))
    dashboard = nodes.get(DASHBOARD_ID)
    dashboard_index = None
    if dashboard and dashboard.outputs.get('dashboard'):
        dashboard_index = dashboard.outputs['dashboard'][0]['properties'].get('index')
    return {'nodes': {n: dataclasses.asdict(r) for n, r in nodes.items()}, 'tasks': tasks,
            'trained_model': trained_model, 'pushed_model': pushed,
            'already_serving': already_serving,
            'request_example': request_example(pushed or already_serving, config.pipeline_name),
            'dashboard': dashboard_index,
            'bad_rows': _bad_rows(nodes)}
