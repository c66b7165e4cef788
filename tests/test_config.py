"""The one config: defaults, YAML, flags, and errors that name the key."""

import json

import pytest

from pipeline.config import ConfigError, PipelineConfig
from trainer_module.settings import TrainerSettings, TrainingConfig


def test_defaults_are_deepctr_mmoe_defaults():
    model = PipelineConfig().model
    assert (model.num_experts, model.expert_dnn_hidden_units, model.tower_dnn_hidden_units,
            model.gate_dnn_hidden_units) == (3, (256, 128), (64,), ())
    assert (model.l2_reg_embedding, model.l2_reg_dnn, model.seed, model.dnn_dropout,
            model.dnn_activation, model.dnn_use_bn) == (1e-5, 0, 1024, 0, 'relu', False)
    assert PipelineConfig().task_names == ('ctr', 'ctcvr')
    assert PipelineConfig().task_types == ('binary', 'binary')


def test_yaml_replaces_defaults_and_resolves_relative_paths(tmp_path):
    path = tmp_path / 'config.yaml'
    path.write_text('pipeline_name: other\n'
                    'data: csvs\n'
                    'schema: schema.pbtxt\n'
                    'sparse_features: [a, {name: b, embedding_dim: 16}]\n'
                    'dense_features: [x]\n'
                    'tasks:\n'
                    '  - {name: like, label: y1}\n'
                    '  - {name: watch, label: y2, type: regression, gate: {max: 2.0}}\n'
                    'slice_features: [a]\n'
                    'drift: [{feature: x, jensen_shannon: 0.2}]\n'
                    'evaluation: {group_by: a}\n'
                    'model: {num_experts: 4, expert_dnn_hidden_units: [32]}\n')
    config = PipelineConfig.from_yaml(str(path))
    assert config.data == str(tmp_path / 'csvs')
    assert config.schema == str(tmp_path / 'schema.pbtxt')
    assert config.sparse_features[1].embedding_dim == 16
    assert config.task_types == ('binary', 'regression')
    assert config.model.num_experts == 4 and config.model.expert_dnn_hidden_units == (32,)
    assert config.model.tower_dnn_hidden_units == (64,)  # untouched keys keep their defaults
    assert PipelineConfig.from_dict(config.to_dict()) == config


def test_overrides_apply_together():
    config = PipelineConfig().with_overrides(
        ['model.num_experts=5', 'training.train_steps=10', 'sparse_features=[user_id]',
         'slice_features=[user_id]', 'drift=[{feature: user_id, infinity_norm: 0.2}]',
         'model.expert_dnn_hidden_units=[8, 4]'])
    assert config.model.num_experts == 5
    assert config.training.train_steps == 10
    assert config.model.expert_dnn_hidden_units == (8, 4)
    assert config.drift[0].infinity_norm == 0.2


def test_numbers_in_exponent_form_are_numbers():
    """YAML 1.1 reads 1e-4 (no dot) as a string; in a config or --set it is the number."""
    config = PipelineConfig().with_overrides(['model.l2_reg_embedding=1e-4',
                                              'training.learning_rate=3E-4'])
    assert (config.model.l2_reg_embedding, config.training.learning_rate) == (1e-4, 3e-4)
    with pytest.raises(ConfigError, match="training.learning_rate: expected a number, got '1e'"):
        PipelineConfig().with_overrides(['training.learning_rate=1e'])


def test_warm_start_settings_travel_to_the_trainer():
    assert (TrainingConfig().warm_start, TrainingConfig().warm_start_mismatch) == (False, 'fail')
    settings = PipelineConfig().with_overrides(
        ['csv_pattern=span-{SPAN}/*.csv', 'training.warm_start=true',
         'training.warm_start_mismatch=cold_start']).trainer_settings()
    again = TrainerSettings.from_dict(json.loads(json.dumps(settings.to_dict())))
    assert (again.training.warm_start, again.training.warm_start_mismatch) == (True, 'cold_start')


@pytest.mark.parametrize('assignment, named', [
    ('model.num_expert=4', 'config.model.num_expert: unknown key'),
    ('model.num_experts=many', 'config.model.num_experts: expected a number'),
    ('tasks=[{name: a, label: click, type: ranking}, {name: b, label: purchase}]',
     "tasks.a.type: 'ranking'"),
    ('slice_features=[country]', "slice_features: ['country']"),
    ('num_oov_buckets=0', 'num_oov_buckets must be >= 1'),
    ('dense_features=[click]', 'columns used twice'),
    ('model.num_experts=1', 'model.num_experts: must be at least 2'),
    ('model.architecture=mlp', "model.architecture: 'mlp' is not one of ('mmoe', 'omoe', "
                               "'shared_bottom', 'ple', 'esmm')"),
    ('tasks=[{name: ctr, label: click}]', 'tasks: a multi-task model needs at least two tasks'),
    ('tasks=[{name: a, label: click}, {name: b, label: purchase, type: regression}]',
     'tasks.b.gate.max: a regression task gated on mean_squared_error needs a bound'),
    ('tasks=[{name: click-through, label: click}, {name: b, label: purchase}]',
     "tasks: 'click-through' is not a valid name"),
    ('training.distribution=tpu', "training.distribution: 'tpu' is not one of"),
    ('training.loss_weighting=equal', "training.loss_weighting: 'equal' is not one of"),
    ('training.warm_start_mismatch=ignore',
     "training.warm_start_mismatch: 'ignore' is not one of ('fail', 'cold_start')"),
    ('training.warm_start=maybe', 'config.training.warm_start: expected true or false'),
    ('training.precision=mixed_float16',
     "training.precision: 'mixed_float16' is not one of ('float32', 'mixed_bfloat16')"),
    ('training.steps_per_execution=0',
     'training.steps_per_execution: must be a whole number, at least 1, got 0'),
    ('training.train_steps=2.5', 'training.train_steps: must be a whole number, at least 1'),
    ('training.epochs=0', 'training.epochs: must be more than 0 passes'),
    ('training.steps_per_epoch=50',
     'config.training.steps_per_epoch: no longer a setting; see training.evaluations_per_epoch'),
    ('training.intra_op_parallelism_threads=-1',
     'training.intra_op_parallelism_threads: must be 0 (one per core) or more, got -1'),
    ('bad_rows=ignore', "bad_rows: 'ignore' is not one of ('fail', 'skip')"),
    ('split_shares=[8, 2]', 'split_shares: three whole numbers, at least 1, for train, validation '
                            'and eval, got [8, 2]'),
    ('split_shares=[8, 0, 1]', 'split_shares: three whole numbers'),
    ('train_eval_split=[8, 2]', 'config.train_eval_split: no longer a setting; see split_shares'),
    ('tasks=[{name: ctr, label: click, gate: {change_test: bootstrap}}, {name: ctcvr, label: '
     'purchase}]', "tasks.ctr.gate.change_test: 'bootstrap' is not one of ('absolute', "
                   "'significant')"),
    ('tasks=[{name: ctr, label: click, gate: {confidence: 95}}, {name: ctcvr, label: purchase}]',
     'tasks.ctr.gate.confidence: must be in [0.5, 1), got 95'),
    # The task types' gated metrics, and what each can be bounded by (issue 31).
    ('tasks=[{name: ctr, label: click, gate: {metric: mean_squared_error}}, {name: ctcvr, '
     'label: purchase}]', "tasks.ctr.gate.metric: 'mean_squared_error' is not a metric a binary "
                          "task can be gated on ('auc', 'gauc')"),
    ('tasks=[{name: ctr, label: click, gate: {metric: auc, max: 0.9}}, {name: ctcvr, label: '
     'purchase}]', 'tasks.ctr.gate.max: auc is better higher: gate it with min, not max'),
    ('tasks=[{name: a, label: click}, {name: b, label: purchase, type: regression, gate: '
     '{min: 1}}]', 'tasks.b.gate.min: mean_squared_error is better lower: gate it with max'),
    ('tasks=[{name: a, label: click, gate: {calibration: {min: 1.2, max: 0.8}}}, {name: b, '
     'label: purchase}]', 'tasks.a.gate.calibration.min: above calibration.max (1.2 > 0.8)'),
    ('tasks=[{name: a, label: click, gate: {calibration: {min: 0}}}, {name: b, label: '
     'purchase}]', 'tasks.a.gate.calibration.min: a calibration (mean prediction / mean label) '
                   'is above 0, got 0'),
    ('tasks=[{name: a, label: click}, {name: b, label: purchase, type: regression, gate: '
     '{max: 1, calibration: {max: 2}}}]', 'tasks.b.gate.calibration: a regression task predicts '
                                          'no probability to calibrate'),
    ('tasks=[{name: a, label: click, min_auc: 0.6, gate: {min: 0.7}}, {name: b, label: '
     'purchase}]', 'tasks.a.min_auc: set twice, here and as gate.min'),
    ('evaluation.group_by=country', "evaluation.group_by: 'country' is not one of "
                                    "sparse_features"),
    ('evaluation.group_by=price', "evaluation.group_by: 'price' is not one of sparse_features"),
    ('drift=[{feature: country, infinity_norm: 0.1}]', "drift: 'country' is not a column"),
    ('drift=[{feature: price}]', "drift: 'price' needs infinity_norm or jensen_shannon"),
    ('drift=[{feature: price, l1: 0.1}]', "got an unexpected keyword argument 'l1'"),
    # Values that would switch a gate or training off without a word (issue 27).
    ('tasks=[{name: ctr, label: click, gate: {max_decrease: .nan}}, {name: ctcvr, label: '
     'purchase}]', 'tasks.ctr.gate.max_decrease: must be a finite number, got nan'),
    ('tasks=[{name: ctr, label: click, gate: {max_decrease: 5}}, {name: ctcvr, label: '
     'purchase}]', 'tasks.ctr.gate.max_decrease: auc falling by more than 0.5 never refuses'),
    ('tasks=[{name: ctr, label: click, gate: {max_decrease: -0.1}}, {name: ctcvr, label: '
     'purchase}]', 'tasks.ctr.gate.max_decrease: must be 0 or more'),
    ('tasks=[{name: ctr, label: click, gate: {min: -3}}, {name: ctcvr, label: purchase}]',
     'tasks.ctr.gate.min: auc lies in [0.0, 1.0], got -3'),
    ('tasks=[{name: ctr, label: click, gate: {min: .inf}}, {name: ctcvr, label: purchase}]',
     'tasks.ctr.gate.min: must be a finite number, got inf'),
    ('tasks=[{name: a, label: click}, {name: b, label: purchase, type: regression, gate: '
     '{max: 0}}]', 'tasks.b.gate.max: mean_squared_error lies in [0.0, inf], above 0, got 0'),
    # The keys of earlier versions still refuse what they refused.
    ('tasks=[{name: ctr, label: click, min_auc: -3}, {name: ctcvr, label: purchase}]',
     'tasks.ctr.gate.min: auc lies in [0.0, 1.0], got -3'),
    ('tasks=[{name: a, label: click, loss_weight: 0}, {name: b, label: purchase, loss_weight: 0}]',
     'tasks: at least one task needs a loss_weight above 0'),
    ('tasks=[{name: a, label: click, loss_weight: -1}, {name: b, label: purchase}]',
     'tasks.a.loss_weight: must be 0 or more'),
    ('training.learning_rate=.nan', 'training.learning_rate: must be a finite number, got nan'),
    ('training.learning_rate=-1', 'training.learning_rate: must be more than 0, got -1'),
    ('training.epochs=.nan', 'training.epochs: must be a finite number, got nan'),
    ('training.epochs=.inf', 'training.epochs: must be a finite number, got inf'),
    ('drift=[{feature: price, jensen_shannon: 1.5}]',
     'drift.price.jensen_shannon: must be in [0, 1), got 1.5'),
    ('model.l2_reg_dnn=-1', 'model.l2_reg_dnn: must be 0 or more'),
    ('model.expert_dnn_hidden_units=[64, 0]',
     'model.expert_dnn_hidden_units: layer widths must be whole numbers, at least 1'),
    ('sparse_features=[{name: device, embedding_dim: 0}]',
     'sparse_features.device.embedding_dim: must be a whole number, at least 1'),
])
def test_errors_name_the_key(assignment, named):
    with pytest.raises(ConfigError, match=None) as error:
        PipelineConfig().with_overrides([assignment])
    assert named in str(error.value)


def test_yaml_errors_name_the_file(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text('model: {dnn_use_bn: maybe}\n')
    with pytest.raises(ConfigError) as error:
        PipelineConfig.from_yaml(str(path))
    assert str(path) in str(error.value) and 'dnn_use_bn' in str(error.value)


def _exec_properties(config):
    """{component id: its execution properties} of the pipeline `config` builds: with the inputs,
    what decides whether TFX reuses a component's execution from the cache."""
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel
    pipeline = create_pipeline(config, '/tmp/root', '/tmp/serving')
    return {component.id: component.exec_properties for component in pipeline.components}


def test_gates_slices_and_drift_reach_only_the_components_that_read_them():
    base = PipelineConfig()
    changed = base.with_overrides([
        'tasks=[{name: ctr, label: click, gate: {min: 0.9, max_decrease: 0.05}}, '
        '{name: ctcvr, label: purchase}]',
        'slice_features=[device, user_age]', 'drift=[{feature: price, jensen_shannon: 0.5}]'])
    before, after = _exec_properties(base), _exec_properties(changed)
    for component in ('CsvExampleGen', 'StatisticsGen', 'Transform', 'Trainer'):
        assert before[component] == after[component], component
    for component in ('Evaluator.ctr', 'Evaluator.ctcvr', 'DriftValidator'):
        assert before[component] != after[component], component


def test_model_and_training_settings_reach_the_trainer_not_transform():
    base = PipelineConfig()
    changed = base.with_overrides(['model.num_experts=4', 'training.learning_rate=0.01'])
    before, after = _exec_properties(base), _exec_properties(changed)
    assert before['Transform'] == after['Transform']
    assert before['Trainer'] != after['Trainer']


def test_trainer_settings_survive_the_trip_through_custom_config():
    import json  # pylint: disable=import-outside-toplevel

    from trainer_module.settings import TrainerSettings  # pylint: disable=import-outside-toplevel
    settings = PipelineConfig().with_overrides([
        'model.expert_dnn_hidden_units=[32, 16]',
        'tasks=[{name: a, label: click, loss_weight: 2.0}, '
        '{name: b, label: purchase, type: regression, gate: {max: 1.0}}]']).trainer_settings()
    assert TrainerSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    assert settings.task_types == ('binary', 'regression')
    assert settings.dense_features == PipelineConfig().dense_features
    # The gate's settings are not the Trainer's.
    assert '"gate"' not in json.dumps(settings.to_dict())


def test_a_gate_on_the_group_auc_needs_the_groups():
    gated = 'tasks=[{name: ctr, label: click, gate: {metric: gauc}}, {name: b, label: purchase}]'
    assert PipelineConfig().with_overrides([gated]).tasks[0].gated_metric.name == 'gauc'
    with pytest.raises(ConfigError, match='tasks.ctr.gate.metric: gauc is computed within the '
                                          'groups of evaluation.group_by'):
        PipelineConfig().with_overrides([gated, 'evaluation.group_by=null'])


def test_the_keys_of_earlier_versions_are_read_with_a_warning_that_shows_the_new_form():
    with pytest.warns(FutureWarning, match=r'tasks.ctr: min_auc, max_decrease will stop being '
                                           r'read; write gate: \{metric: auc, min: 0.6, '
                                           r'max_decrease: 0.02\}'):
        old = PipelineConfig().with_overrides([
            'tasks=[{name: ctr, label: click, min_auc: 0.6, max_decrease: 0.02}, '
            '{name: w, label: purchase, type: regression, max_mse: 0.3}]'])
    new = PipelineConfig().with_overrides([
        'tasks=[{name: ctr, label: click, gate: {metric: auc, min: 0.6, max_decrease: 0.02}}, '
        '{name: w, label: purchase, type: regression, gate: {metric: mean_squared_error, '
        'max: 0.3}}]'])
    assert old == new
    assert new.tasks[0].bound == 0.6 and new.tasks[1].bound == 0.3


@pytest.mark.parametrize('text, named', [
    ('{"bayes_auc": {"ctr": {"expected": 0.76}', 'not a Bayes AUC report'),
    ('{"bayes_auc": {"ctr": 0.76}}', 'not a Bayes AUC report'),
    ('{"bayes_auc": {"ctr": {"expected": "high"}}}', "bayes_auc.ctr.expected: an AUC in [0, 1]"),
])
def test_a_malformed_bayes_auc_report_in_the_data_is_named(tmp_path, text, named):
    from pipeline.evaluation import bayes_aucs  # pylint: disable=import-outside-toplevel
    (tmp_path / 'bayes_auc.json').write_text(text)
    with pytest.raises(ConfigError) as error:
        bayes_aucs(PipelineConfig(data=str(tmp_path)))
    assert f'{tmp_path / "bayes_auc.json"}: ' in str(error.value) and named in str(error.value)
    (tmp_path / 'bayes_auc.json').write_text('{"bayes_auc": {"ctr": {"expected": 0.76}}}')
    assert bayes_aucs(PipelineConfig(data=str(tmp_path))) == {'ctr': 0.76}


def test_the_push_does_not_wait_for_the_dashboards():
    """A dashboard that fails must not keep a blessed model from serving: the Pusher runs first."""
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel
    components = {c.id: c for c in create_pipeline(PipelineConfig(), '/tmp/root',
                                                   '/tmp/serving').components}
    assert 'Pusher' in {node.id for node in components['Dashboard'].upstream_nodes}
    assert 'Dashboard' not in {node.id for node in components['Pusher'].upstream_nodes}
