"""`create_pipeline()`: the MMOE pipeline, the same for the local and the Kubeflow runners."""

import enum
import json
from typing import Any, Dict, List, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types

from components import atomic_pusher, csv_example_gen, grouped_evaluation, trainer_executor
from components import transform as transform_component
from components.anomaly_check import CHECKED_STATISTICS_KEY, AnomalyCheck, CheckedStatistics
from components.anomaly_check import COMPONENT_ID as ANOMALY_CHECK_ID
from components.baseline_resolver import (
    BLESSING_KEY,
    CANDIDATE_KEY,
    MODEL_KEY,
    LatestBlessedOtherModelStrategy,
)
from components.blessing_gate import COMPONENT_ID as GATE_ID
from components.blessing_gate import BlessingGate
from components.csv_example_gen import EVAL, SPLITS, TRAIN, VALIDATION
from components.dashboard import COMPONENT_ID as DASHBOARD_ID
from components.dashboard import Dashboard
from components.drift_validator import DriftValidator, LatestIfAnyStrategy
from components.evaluator import Evaluator
from components.serving_baseline import COMPONENT_ID as SERVING_BASELINE_ID
from components.serving_baseline import ServingBaseline
from components.span_window import (
    CHECKED_KEY,
    EXAMPLES_KEY,
    LatestBlessedBeforeStrategy,
    WindowStrategy,
)
from components.statistics_gen import StatisticsGen
from components.training_window import (
    BACKFILL_CHECK_ID,
    BACKFILL_KEY,
    JUDGED_KEY,
    TRAINING_KEY,
    BackfillCheck,
    TrainingWindow,
)
from components.training_window import COMPONENT_ID as TRAINING_WINDOW_ID
from pipeline.config import ConfigError, PipelineConfig
from pipeline.evaluation import bayes_aucs, eval_config, evaluator_id, interval_tests
from pipeline.spans import SpanPlan, files_of
from trainer_module import features

PREPROCESSING_FN = 'trainer_module.preprocessing.preprocessing_fn'
TRAINER_ID = 'Trainer'
RUN_FN = 'trainer_module.run.run_fn'
# How many of the gate's past runs each task's dashboard page shows in its History.
HISTORY_RUNS = 30
# A compiled pipeline's parameters of each run, by span (create_pipeline's `span_store`), with
# their defaults: ExampleGen's RangeConfig as JSON ('' reads the newest span), and whether a span
# older than one read already may be trained and judged on (components/training_window.py).
RANGE_CONFIG_PARAMETER = 'range_config'
SPAN_PARAMETERS: Dict[str, Any] = {RANGE_CONFIG_PARAMETER: '', BACKFILL_KEY: 0}


class Baselines(enum.Enum):
    """Where a run finds what it is judged against: the baseline model of the Evaluators and the
    baseline statistics of the drift check."""

    # Resolvers with this project's strategies over ML Metadata (local runs).
    METADATA = 'metadata'
    # Resolvers with TFX's own strategies, the only ones KFP v2 compiles into the metadata queries
    # Vertex AI answers.
    METADATA_QUERIES = 'metadata_queries'
    # No Resolver: the serving directory, read when the run executes (open-source Kubeflow
    # Pipelines, which runs no resolver task; components/serving_baseline.py).
    SERVING_DIR = 'serving_dir'


def _split_configs(config: PipelineConfig):
    """(ExampleGen's input and output configs, the shares our executor splits the train files
    into). With no files of the user's own for validation or eval, TFX's own hash split of
    csv_pattern's rows; else a split per pattern, and the splits without files are drawn from the
    train files by hash (csv_example_gen)."""
    own = {VALIDATION: config.validation_csv_pattern, EVAL: config.eval_csv_pattern}
    shares = dict(zip(SPLITS, config.split_shares))
    if not any(own.values()):
        return {
            'input_config': tfx.proto.Input(splits=[
                tfx.proto.Input.Split(name='csv', pattern=config.csv_pattern)]),
            'output_config': tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
                tfx.proto.SplitConfig.Split(name=name, hash_buckets=shares[name])
                for name in SPLITS]))}, {}
    patterns = {TRAIN: config.csv_pattern, **own}
    input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(name=name, pattern=pattern)
                                           for name, pattern in patterns.items() if pattern])
    drawn = [name for name in SPLITS if not patterns[name]]
    return ({'input_config': input_config},
            {name: shares[name] for name in [TRAIN, *drawn]} if drawn else {})


def _blessed_models() -> Dict[str, Any]:
    """A resolver's inputs: every model of the Trainer and every blessing of the gate."""
    # Any: mypy would match the channels given by ** against Resolver's `config` argument.
    return {MODEL_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                                       producer_component_id=TRAINER_ID),
            BLESSING_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                          producer_component_id=GATE_ID)}


def drift_config(config: PipelineConfig) -> tfx.proto.DistributionValidatorConfig:
    """DistributionValidator's comparators, one per `drift` bound."""
    drift = tfx.proto.DistributionValidatorConfig()
    for bound in config.drift:
        feature = drift.default_slice_config.feature.add()
        feature.path.step.append(bound.feature)
        comparator = feature.distribution_comparator
        if bound.infinity_norm is not None:
            comparator.infinity_norm.threshold = bound.infinity_norm
        if bound.jensen_shannon is not None:
            comparator.jensen_shannon_divergence.threshold = bound.jensen_shannon
    return drift


def create_pipeline(config: PipelineConfig, pipeline_root: str, serving_dir: str,
                    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
                    beam_pipeline_args: Optional[List[str]] = None,
                    enable_cache: bool = True,
                    baselines: Baselines = Baselines.METADATA,
                    history_runs: int = HISTORY_RUNS,
                    spans: Optional[SpanPlan] = None,
                    ingest_only: bool = False,
                    span_store: Optional[str] = None) -> tfx.dsl.Pipeline:
    """`baselines`: where the drift check's and the Evaluators' baselines come from (Baselines).
    `history_runs`: how many of the gate's past verdicts (from ML Metadata) the dashboards'
    History shows; 0 for none (KFP v2 compiles no Resolver that returns more than one
    artifact).
    `spans`: for data by span (pipeline/spans.py), the span this run reads and judges on and the
    earlier spans it trains on, which earlier runs read; `ingest_only`: the pipeline up to the
    data checks only, which reads a span of a window that no run read yet.
    `span_store`: for data by span in a compiled pipeline, where no resolver of ours runs, the
    directory that records the spans whose data passed the checks, from which each run takes its
    window (TrainingWindow); the span is then a parameter of each run (SPAN_PARAMETERS)."""
    split_configs, split_off_train = _split_configs(config)
    if span_store is not None:
        split_configs['range_config'] = data_types.RuntimeParameter(
            name=RANGE_CONFIG_PARAMETER, ptype=str, default=SPAN_PARAMETERS[RANGE_CONFIG_PARAMETER])
    elif spans is not None:
        split_configs['range_config'] = tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=spans.span, end_span_number=spans.span))
    example_gen = FileBasedExampleGen(
        input_base=config.data,
        custom_config=csv_example_gen.custom_config(config.schema, config.bad_rows,
                                                    split_off_train, features.separators(config)),
        custom_executor_spec=executor_spec.BeamExecutorSpec(csv_example_gen.Executor),
        **split_configs).with_id('CsvExampleGen')
    statistics_gen = StatisticsGen(examples=example_gen.outputs['examples'])
    # The drift baseline: the statistics of the last data that passed every check (AnomalyCheck
    # publishes them only then), resolved before this run's exist. Not simply the previous run's:
    # data that a check refused would become its own baseline, and pass when run again. From the
    # serving directory, the checked statistics of the data the serving model was trained on.
    serving_baseline = None
    if baselines is Baselines.SERVING_DIR:
        serving_baseline = ServingBaseline(serving_dir=serving_dir).with_id(SERVING_BASELINE_ID)
        baseline_statistics = serving_baseline.outputs['statistics']
    else:
        previous_statistics = tfx.dsl.Resolver(
            strategy_class=(tfx.dsl.experimental.LatestArtifactStrategy
                            if baselines is Baselines.METADATA_QUERIES else LatestIfAnyStrategy),
            statistics=tfx.dsl.Channel(type=CheckedStatistics,
                                       producer_component_id=ANOMALY_CHECK_ID,
                                       output_key=CHECKED_STATISTICS_KEY),
        ).with_id('previous_statistics_resolver')
        baseline_statistics = previous_statistics.outputs['statistics']
        statistics_gen.add_upstream_node(previous_statistics)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'])
    drift_validator = DriftValidator(
        statistics=statistics_gen.outputs['statistics'],
        baseline_statistics=baseline_statistics,
        config=drift_config(config))
    anomaly_check = AnomalyCheck(
        anomalies=example_validator.outputs['anomalies'],
        statistics=statistics_gen.outputs['statistics'],
        drift=drift_validator.outputs['anomalies'],
        fail_on_anomalies=config.fail_on_anomalies,
        binary_labels=json.dumps([task.label for task in config.tasks if task.kind.binary_labels]),
        sample_spaces=json.dumps({task.name: config.sample_space(task) for task in config.tasks
                                  if task.given}, sort_keys=True),
        examples=example_gen.outputs['examples'],
    ).with_id(ANOMALY_CHECK_ID)
    checks = [example_gen, *filter(None, [serving_baseline]),
              *([previous_statistics] if serving_baseline is None else []), statistics_gen,
              schema_gen, example_validator, drift_validator, anomaly_check]
    if ingest_only:
        return tfx.dsl.Pipeline(
            pipeline_name=config.pipeline_name, pipeline_root=pipeline_root, components=checks,
            enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
            beam_pipeline_args=list(beam_pipeline_args or []))

    # By span, the Trainer learns from the window's spans before this one, and the Evaluators
    # judge on every row of this one: a time-based eval split. The first span has no window.
    window = spans.window if spans is not None else ()
    training_examples = example_gen.outputs['examples']
    judged_examples, judged_splits = example_gen.outputs['examples'], [EVAL]
    window_nodes: List[Any] = []
    if span_store is not None:
        # Never taken from the cache (kubeflow_runner.py): a span read before would be.
        backfill_check = BackfillCheck(
            examples=example_gen.outputs['examples'], span_store=span_store,
            backfill=data_types.RuntimeParameter(name=BACKFILL_KEY, ptype=int,
                                                 default=SPAN_PARAMETERS[BACKFILL_KEY]),
        ).with_id(BACKFILL_CHECK_ID)
        training_window = TrainingWindow(
            examples=example_gen.outputs['examples'], span_store=span_store,
            window_spans=config.training.window_spans).with_id(TRAINING_WINDOW_ID)
        # It records the span as checked: only once the checks passed.
        training_window.add_upstream_node(anomaly_check)
        training_window.add_upstream_node(backfill_check)
        window_nodes = [backfill_check, training_window]
        training_examples = training_window.outputs[TRAINING_KEY]
        judged_examples = training_window.outputs[JUDGED_KEY]
    elif window:
        window_nodes = [tfx.dsl.Resolver(
            strategy_class=WindowStrategy, config={'first': window[0], 'last': window[-1]},
            **{EXAMPLES_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                             producer_component_id=example_gen.id,
                                             output_key='examples'),
               CHECKED_KEY: tfx.dsl.Channel(type=CheckedStatistics,
                                            producer_component_id=ANOMALY_CHECK_ID,
                                            output_key=CHECKED_STATISTICS_KEY)},
        ).with_id('training_window_resolver')]
        training_examples = window_nodes[0].outputs[EXAMPLES_KEY]
        judged_splits = list(SPLITS)

    # TFX's Transform, reading and writing a batch of examples at a time (components/transform.py).
    transform = transform_component.Transform(
        examples=training_examples,
        schema=schema_gen.outputs['schema'],
        preprocessing_fn=PREPROCESSING_FN,
        # Vocabularies and scaling from the training rows only; eval is never transformed (the
        # Evaluators read raw examples through the model's serving signature).
        splits_config=tfx.proto.SplitsConfig(analyze=[TRAIN], transform=[TRAIN, VALIDATION]),
        # TFT's TF1 graph mode traces preprocessing_fn once into a graph, where TF2 mode traces
        # tf.functions and writes and reloads v2 SavedModels several times a run, for the same
        # transformed data and model in about twice the time (docs/performance.md).
        force_tf_compat_v1=True,
        # Pre-transform statistics repeat StatisticsGen's, and nothing reads post-transform ones.
        disable_statistics=True,
        custom_config=config.transform_dict())
    # Transform reads the examples directly; it must still wait for the anomaly check.
    transform.add_upstream_node(anomaly_check)

    # Warm start (training.warm_start, by span only): from the model blessed on the newest span
    # before this one, which is the model that serves unless this span was judged already (a rerun
    # then starts from what the first run started from, and comes from the cache). From the serving
    # directory, the model that serves (empty where none does: a cold start).
    warm_start: List[Any] = []
    base_model = None
    if config.training.warm_start and serving_baseline is not None:
        base_model = serving_baseline.outputs['model']
    elif config.training.warm_start and baselines is Baselines.METADATA_QUERIES:
        raise ConfigError('training.warm_start: not on Vertex AI yet (its compiled resolvers '
                          'cannot pick the model blessed on the span before the run\'s); '
                          'docs/continuous-training.md')
    elif config.training.warm_start and spans is not None:
        warm_start = [tfx.dsl.Resolver(
            strategy_class=LatestBlessedBeforeStrategy, config={'span': spans.span},
            **_blessed_models()).with_id('warm_start_model_resolver')]
        base_model = warm_start[0].outputs[MODEL_KEY]
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        base_model=base_model,
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema_gen.outputs['schema'],
        # Early stopping picks the weights on validation: the eval split judges the model unseen.
        train_args=tfx.proto.TrainArgs(splits=[TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=[VALIDATION]),
        custom_config=config.trainer_settings().to_dict(),
        custom_executor_spec=executor_spec.ExecutorClassSpec(trainer_executor.Executor),
    ).with_id(TRAINER_ID)

    # The baseline is the latest model the gate blessed: never one that only some tasks blessed,
    # and (locally) never the candidate itself. From the serving directory, the model that serves.
    resolvers: List[Any] = []
    if serving_baseline is not None:
        baseline_model = serving_baseline.outputs['model']
    else:
        blessed = _blessed_models()
        if baselines is Baselines.METADATA_QUERIES:
            baseline_resolver = tfx.dsl.Resolver(
                strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy, **blessed)
        else:
            baseline_resolver = tfx.dsl.Resolver(
                strategy_class=LatestBlessedOtherModelStrategy,
                **{CANDIDATE_KEY: trainer.outputs['model'], **blessed})
        baseline_resolver = baseline_resolver.with_id('latest_blessed_model_resolver')
        baseline_model = baseline_resolver.outputs['model']
        resolvers = [baseline_resolver]

    evaluators = [
        Evaluator(
            examples=judged_examples,
            model=trainer.outputs['model'],
            baseline_model=baseline_model,
            schema=schema_gen.outputs['schema'],
            eval_config=eval_config(config, task),
            example_splits=judged_splits,
            # TFMA's extractors, with groups of examples instead of single ones after the model
            # (the Evaluator's executor builds TFMA's metrics with combiners for such groups).
            module_path=grouped_evaluation.__name__,
        ).with_id(evaluator_id(task.name))
        for task in config.tasks
    ]
    gate = BlessingGate(
        model=trainer.outputs['model'],
        evaluations={task.name: evaluator.outputs['evaluation']
                     for task, evaluator in zip(config.tasks, evaluators)},
        interval_tests={task.name: interval_tests(task) for task in config.tasks},
        span=spans.span if spans is not None else None,
    ).with_id(GATE_ID)
    # The gate's past verdicts, whatever they were: the dashboards' History.
    history = [tfx.dsl.Resolver(
        strategy_class=LatestIfAnyStrategy, config={'desired_num_of_artifacts': history_runs},
        blessings=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                  producer_component_id=GATE_ID),
    ).with_id('gate_history_resolver')] if history_runs else []
    dashboard = Dashboard(
        blessing=gate.outputs['blessing'],
        history=history[0].outputs['blessings'] if history else None,
        reference_aucs=json.dumps(bayes_aucs(config, files_of(config.csv_pattern, spans.span)
                                             if spans is not None else None)
                                  if history else {}, sort_keys=True),
    ).with_id(DASHBOARD_ID)
    pusher = atomic_pusher.Pusher(
        model=trainer.outputs['model'],
        model_blessing=gate.outputs['blessing'],
        # Its eval rows become the request example beside the pushed model. Where the serving
        # directory holds the baselines, the checked statistics of the data it was trained on go
        # beside it too (elsewhere they would make a run with nothing new push again: the drift
        # check, and so the statistics, run again whenever the resolved baseline moves on).
        examples=example_gen.outputs['examples'],
        statistics=(anomaly_check.outputs[CHECKED_STATISTICS_KEY] if serving_baseline is not None
                    else None),
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)))

    # The push first: a dashboard that fails must not keep a blessed model from serving.
    dashboard.add_upstream_node(pusher)

    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=pipeline_root,
        components=[*checks, *window_nodes, transform, *warm_start, trainer, *resolvers,
                    *evaluators, gate, *history, dashboard, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args or []))
