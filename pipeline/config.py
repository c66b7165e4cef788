"""The one typed config of the pipeline: data layout, tasks, MMOE arguments, training and gates.

The runners build it (defaults, then `--config FILE`, then flags); each component gets only the part
it reads: Transform `transform_dict()`, the Trainer `trainer_settings()` (defined on the model side,
in `trainer_module/settings.py`), each Evaluator an EvalConfig generated from it, ExampleGen its
schema and bad-row policy. So a change to one part leaves the components that do not read it cached.
"""

import dataclasses
import math
import os
import re
import warnings
from typing import Any, Dict, List, Optional, Tuple

import yaml

from pipeline.datasets import ecommerce
from trainer_module import architectures, early_stopping, features
from trainer_module.features import CrossFeature, DenseFeature, SequenceFeature, SparseFeature
from trainer_module.settings import (
    DISTRIBUTIONS,
    LOSS_WEIGHTINGS,
    PRECISIONS,
    WARM_START_MISMATCHES,
    ModelConfig,
    TaskColumns,
    TaskHead,
    TrainerSettings,
    TrainingConfig,
)
from trainer_module.task_types import TASK_TYPES, Metric, TaskType
from trainer_module.task_types.binary import AUC
from trainer_module.task_types.regression import MSE

# The checkout (or the installed project's directory): where the bundled data and schema live.
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What ExampleGen does with a CSV row it cannot read: stop the run naming it, or set it aside.
BAD_ROWS_POLICIES = ('fail', 'skip')
# How a task's change from the baseline is judged against `max_decrease`: by the point estimate, or
# by the paired confidence interval of the change (refused only when all of it is beyond the bound).
CHANGE_TESTS = ('absolute', 'significant')


class ConfigError(ValueError):
    """A config that cannot describe a pipeline; the message names the offending key."""


@dataclasses.dataclass(frozen=True)
class CalibrationBound:
    """Where a binary task's calibration (mean prediction / mean label) must lie: the model is
    refused when the whole interval of its calibration (at the gate's `confidence`) is below `min`
    or above `max`, so that a calibration off by chance on a small eval split refuses nothing.
    Either side may be left open (None)."""
    min: Optional[float] = None
    max: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Gate:
    """How a task's model is judged on the whole eval split (slices are shown, not gated: a small
    slice's metric is noise).

    `metric` is one of the task type's gated metrics (trainer_module/task_types/; binary: `auc`,
    `gauc`; regression: `mean_squared_error`), None for the type's first. `min` is a floor of a
    higher-is-better metric (AUC and GAUC: 0.5 when unset), `max` a ceiling of a lower-is-better
    one (required for the mean squared error: what predicting the mean achieves is the label's
    variance). `max_decrease` bounds how much worse than the baseline (the serving model) the
    candidate may be on the same metric; `change_test` says how: `significant` refuses only when
    the candidate is worse by more than `max_decrease` with `confidence` (the whole two-sided
    interval of the paired change, both models on the same eval examples, lies beyond it);
    `absolute` refuses when the measured change is. `calibration` bounds a binary task's
    calibration, judged on its interval at `confidence`.
    """
    metric: Optional[str] = None
    min: Optional[float] = None
    max: Optional[float] = None
    max_decrease: float = 0.01
    change_test: str = 'significant'
    confidence: float = 0.95
    calibration: CalibrationBound = CalibrationBound()


@dataclasses.dataclass(frozen=True)
class Task:
    """One output of the model: its label column, task type (trainer_module/task_types/), weight in
    the training loss, and its gate.

    `given` names another (binary) task whose positive rows are this task's sample space: a
    conversion is only defined after a click, so a CVR task `given: ctr` is trained (its loss
    masked) and judged on the clicked rows only. None: every row.
    """
    name: str
    label: str
    type: str = 'binary'
    loss_weight: float = 1.0
    gate: Gate = Gate()
    given: Optional[str] = None

    @property
    def kind(self) -> TaskType:
        """The definition of the task's type."""
        return TASK_TYPES[self.type]

    @property
    def gated_metric(self) -> Metric:
        """The metric the task is gated on."""
        return self.kind.gated_metric(self.gate.metric)

    @property
    def bound(self) -> Optional[float]:
        """The gated metric's value bound: the gate's floor (or ceiling), else the metric's
        default; None when there is none."""
        metric = self.gated_metric
        given = self.gate.min if metric.higher_is_better else self.gate.max
        return metric.default_bound if given is None else given


# Keys a task took before `gate:` held its bounds: (the gate's key, the metric they implied).
_OLD_TASK_KEYS = {'min_auc': ('min', AUC.name), 'max_mse': ('max', MSE.name),
                  'max_decrease': ('max_decrease', None), 'change_test': ('change_test', None),
                  'confidence': ('confidence', None)}


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """What the Evaluators compute beside each task's metrics. `group_by` names the column whose
    values group the eval examples (a user id) for the group AUC (`gauc`) of binary tasks, None
    for no groups."""
    group_by: Optional[str] = 'user_id'


@dataclasses.dataclass(frozen=True)
class DriftBound:
    """How far a feature's distribution may move from the previous data's before the run stops:
    TFDV's L-infinity distance of the value frequencies (categorical features) and/or its
    Jensen-Shannon divergence of the histograms (numbers), each in [0, 1]."""
    feature: str
    infinity_norm: Optional[float] = None
    jensen_shannon: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class PipelineConfig(TaskColumns):
    pipeline_name: str = 'mmoe'
    data: str = os.path.join(PROJECT_DIR, 'data', 'ecommerce')
    csv_pattern: str = '*.csv'
    # Files of your own for the eval split (e.g. a later time window) and for the validation split.
    # A split left unset is drawn from csv_pattern's rows by hash (split_shares).
    eval_csv_pattern: Optional[str] = None
    validation_csv_pattern: Optional[str] = None
    schema: str = os.path.join(PROJECT_DIR, 'schema', 'schema.pbtxt')
    sparse_features: Tuple[SparseFeature, ...] = tuple(
        SparseFeature(name, embedding_dim=8) for name in ecommerce.SPARSE_COLUMNS)
    dense_features: Tuple[DenseFeature, ...] = tuple(
        DenseFeature(name, log1p=name in ecommerce.HEAVY_TAILED_COLUMNS)
        for name in ecommerce.DENSE_COLUMNS)
    # Columns of several values per row, such as behaviour histories (trainer_module/features/).
    sequence_features: Tuple[SequenceFeature, ...] = ()
    # Crosses of categorical features, computed in the Transform graph (trainer_module/features/).
    cross_features: Tuple[CrossFeature, ...] = ()
    tasks: Tuple[Task, ...] = tuple(
        Task(name, label, gate=Gate(metric=AUC.name)) for name, label in ecommerce.TASK_LABELS.items())
    slice_features: Tuple[str, ...] = ('device',)
    num_oov_buckets: int = 1
    # Hash-bucket shares of the train, validation and eval splits drawn from csv_pattern's rows (a
    # split with files of its own takes no share). The Trainer learns from train and stops early on
    # validation; only the Evaluators and the gate see eval.
    split_shares: Tuple[int, int, int] = (8, 1, 1)
    fail_on_anomalies: bool = True
    bad_rows: str = 'fail'
    # Checked against the statistics of the data the previous run read, split by split.
    drift: Tuple[DriftBound, ...] = (
        DriftBound('device', infinity_norm=0.1), DriftBound('user_age', infinity_norm=0.1),
        DriftBound('price', jensen_shannon=0.1), DriftBound('item_rating', jensen_shannon=0.1))
    evaluation: EvaluationConfig = EvaluationConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()

    def __post_init__(self):
        self._validate()

    def _validate(self):
        # NaN compares false with every bound, so a check written as `if value <= 0: refuse`
        # would let it through and switch a gate off; an infinite bound switches it off too.
        for where, value in _numbers(self, ''):
            if not math.isfinite(value):
                raise ConfigError(f'{where}: must be a finite number, got {value}')
        columns = features.columns(self) + list(self.label_columns)
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ConfigError(f'columns used twice (as features or labels): {repeated}')
        # A feature computed from others (a cross) is no column: its name must be none of them.
        computed = [(kind.section, f.name) for kind in features.KINDS if not kind.column
                    for f in getattr(self, kind.section)]
        for index, (section, name) in enumerate(computed):
            if name in columns:
                raise ConfigError(f'{section}.{name}: the name of a column of the data (a feature '
                                  'or a label); a cross is computed from columns and needs a name '
                                  'of its own')
            if name in [other for _, other in computed[:index]]:
                raise ConfigError(f'{section}.{name}: named twice')
        if not any(getattr(self, section) for section in features.SECTIONS):
            raise ConfigError(f'no features: {", ".join(features.SECTIONS)} are all empty')
        # A transformed feature a kind adds (a list's length) must not be another column.
        for output, owner in features.outputs(self):
            if output != owner and output in columns:
                raise ConfigError(f'{output!r}: a column of the data, and the name of a feature '
                                  f'that {owner!r} outputs; rename one')
        try:
            features.check_features(self)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        names = self.task_names
        # MMOE's own checks, here so that they stop a run before any component starts.
        if len(names) < 2:
            raise ConfigError(f'tasks: a multi-task model needs at least two tasks, got {list(names)}')
        try:
            architectures.check(self.model, self.task_types)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if not 0 <= self.model.dnn_dropout < 1:
            raise ConfigError(f'model.dnn_dropout: must be in [0, 1), got {self.model.dnn_dropout}')
        if len(set(names)) != len(names):
            raise ConfigError(f'tasks: task names must be unique, got {list(names)}')
        for task in self.tasks:
            # A task name names a model output, a component input and a page.
            if not task.name.isidentifier():
                raise ConfigError(f'tasks: {task.name!r} is not a valid name (letters, digits and '
                                  'underscores, not starting with a digit)')
            if task.type not in TASK_TYPES:
                raise ConfigError(f'tasks.{task.name}.type: {task.type!r} is not one of '
                                  f'{tuple(TASK_TYPES)}')
            if task.loss_weight < 0:
                raise ConfigError(f'tasks.{task.name}.loss_weight: must be 0 or more, got '
                                  f'{task.loss_weight}')
            _check_gate(task, self.evaluation.group_by)
            if task.given is not None:
                _check_sample_space(task, {t.name: t for t in self.tasks})
                if architectures.ARCHITECTURES[self.model.architecture].entire_space:
                    raise ConfigError(f'tasks.{task.name}.given: model.architecture '
                                      f'{self.model.architecture} trains every task on every row '
                                      '(its own conditional task is learned through the product '
                                      'of the others)')
        if not any(task.loss_weight > 0 for task in self.tasks):
            raise ConfigError('tasks: at least one task needs a loss_weight above 0 (the model '
                              'would learn nothing)')
        group_by = self.evaluation.group_by
        if group_by is not None and group_by not in [f.name for f in self.sparse_features]:
            raise ConfigError(f'evaluation.group_by: {group_by!r} is not one of sparse_features: '
                              'name the column of one id per row that groups the impressions '
                              '(a user id), or set it to null (the default groups the bundled '
                              'data by user_id)')
        unknown_slices = set(self.slice_features) - set(columns)
        if unknown_slices:
            raise ConfigError(f'slice_features: {sorted(unknown_slices)} are not columns of the data')
        if self.training.distribution not in DISTRIBUTIONS:
            raise ConfigError(f'training.distribution: {self.training.distribution!r} is not one '
                              f'of {DISTRIBUTIONS}')
        if self.training.loss_weighting not in LOSS_WEIGHTINGS:
            raise ConfigError(f'training.loss_weighting: {self.training.loss_weighting!r} is not '
                              f'one of {LOSS_WEIGHTINGS}')
        if self.training.warm_start_mismatch not in WARM_START_MISMATCHES:
            raise ConfigError(f'training.warm_start_mismatch: '
                              f'{self.training.warm_start_mismatch!r} is not one of '
                              f'{WARM_START_MISMATCHES}')
        if self.training.precision not in PRECISIONS:
            raise ConfigError(f'training.precision: {self.training.precision!r} is not one of '
                              f'{PRECISIONS}')
        self._check_spans()
        if not isinstance(self.training.max_memory_mb, int) or self.training.max_memory_mb < 0:
            raise ConfigError('training.max_memory_mb: must be a whole number of MB, 0 to always '
                              f'stream, got {self.training.max_memory_mb!r}')
        for setting in ('train_steps', 'evaluations_per_epoch', 'steps_per_execution',
                        'batch_size', 'shuffle_buffer_rows'):
            value = getattr(self.training, setting)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f'training.{setting}: must be a whole number, at least 1, got '
                                  f'{value!r}')
        if self.training.learning_rate <= 0:
            raise ConfigError('training.learning_rate: must be more than 0, got '
                              f'{self.training.learning_rate}')
        for setting in ('expert_dnn_hidden_units', 'tower_dnn_hidden_units',
                        'gate_dnn_hidden_units'):
            units = getattr(self.model, setting)
            if not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1 for u in units):
                raise ConfigError(f'model.{setting}: layer widths must be whole numbers, at least '
                                  f'1, got {list(units)}')
        for setting in ('l2_reg_embedding', 'l2_reg_dnn'):
            if getattr(self.model, setting) < 0:
                raise ConfigError(f'model.{setting}: must be 0 or more, got '
                                  f'{getattr(self.model, setting)}')
        try:
            early_stopping.resolve(self.training.early_stopping_metric, self.tasks)
        except ValueError as e:
            raise ConfigError(f'training.early_stopping_metric: {e}') from None
        for setting in ('epochs', 'early_stopping_patience'):
            if getattr(self.training, setting) <= 0:
                raise ConfigError(f'training.{setting}: must be more than 0 passes over the '
                                  f'training split, got {getattr(self.training, setting)}')
        if self.training.intra_op_parallelism_threads < 0:
            raise ConfigError('training.intra_op_parallelism_threads: must be 0 (one per core) or '
                              f'more, got {self.training.intra_op_parallelism_threads}')
        if (len(self.split_shares) != 3
                or not all(isinstance(s, int) and s >= 1 for s in self.split_shares)):
            raise ConfigError('split_shares: three whole numbers, at least 1, for train, validation '
                              f'and eval, got {list(self.split_shares)}')
        if self.bad_rows not in BAD_ROWS_POLICIES:
            raise ConfigError(f'bad_rows: {self.bad_rows!r} is not one of {BAD_ROWS_POLICIES}')
        for bound in self.drift:
            if bound.feature not in columns:
                raise ConfigError(f'drift: {bound.feature!r} is not a column of the data (the '
                                  'default bounds watch the bundled data: set drift: [] or your own)')
            if bound.infinity_norm is None and bound.jensen_shannon is None:
                raise ConfigError(f'drift: {bound.feature!r} needs infinity_norm or jensen_shannon')
            for measure in ('infinity_norm', 'jensen_shannon'):
                value = getattr(bound, measure)
                # Both distances lie in [0, 1]: a bound of 1 or more never stops a run.
                if value is not None and not 0 <= value < 1:
                    raise ConfigError(f'drift.{bound.feature}.{measure}: must be in [0, 1), got '
                                      f'{value}')
        if self.num_oov_buckets < 1:
            raise ConfigError('num_oov_buckets must be >= 1 so that unseen values get an OOV id')

    def _check_spans(self):
        """Data by span (pipeline/spans.py): the patterns TFX's ExampleGen reads alike, no files of
        one's own for eval (the newest span is the eval data), and the settings that need spans."""
        from pipeline import spans  # pylint: disable=import-outside-toplevel  (it imports this)
        by_span = spans.by_span(self.csv_pattern)
        if by_span:
            spans.check_pattern(self.csv_pattern, 'csv_pattern')
        for key in ('eval_csv_pattern', 'validation_csv_pattern'):
            pattern = getattr(self, key)
            if pattern and by_span:
                raise ConfigError(f'{key}: with csv_pattern by span ({self.csv_pattern}) each run '
                                  'judges on the newest span and draws validation rows from the '
                                  'spans it trains on by hash; remove it')
            if pattern and spans.by_span(pattern):
                raise ConfigError(f'{key}: {pattern!r} names a span: name it in csv_pattern, '
                                  'which the spans are read from')
        if not isinstance(self.training.window_spans, int) or self.training.window_spans < 1:
            raise ConfigError('training.window_spans: must be a whole number of spans, at least 1, '
                              f'got {self.training.window_spans!r}')
        if self.training.warm_start and not by_span:
            raise ConfigError('training.warm_start: needs data by span (csv_pattern with {SPAN} '
                              'or {YYYY}-{MM}-{DD}, docs/continuous-training.md): a run starts '
                              'from the model judged on the span before its own')

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def sample_space(self, task: Task) -> Optional[str]:
        """The label column whose rows at 1 are `task`'s sample space (its `given` task's
        label); None for every row."""
        return next(t.label for t in self.tasks if t.name == task.given) if task.given else None

    def trainer_settings(self) -> TrainerSettings:
        """What the Trainer's custom_config holds: only what training reads, so that changing a
        gate, a slice or a drift bound leaves the Trainer execution cached."""
        return TrainerSettings(
            **{section: getattr(self, section) for section in features.SECTIONS},
            tasks=tuple(TaskHead(t.name, t.label, t.type, t.loss_weight, self.sample_space(t))
                        for t in self.tasks),
            num_oov_buckets=self.num_oov_buckets, model=self.model, training=self.training)

    def transform_dict(self) -> Dict[str, Any]:
        """What Transform's custom_config holds: only what preprocessing reads, so that changing
        training or evaluation settings leaves the Transform execution cached."""
        return {**features.to_dicts(self),
                'label_columns': list(self.label_columns),
                'num_oov_buckets': self.num_oov_buckets}

    @classmethod
    def from_dict(cls, values: Dict[str, Any], base: Optional['PipelineConfig'] = None
                  ) -> 'PipelineConfig':
        """Builds a config from (possibly partial) nested dicts over `base` (default: the defaults)."""
        return _replace(base or cls(), values, 'config')

    @classmethod
    def from_yaml(cls, path: str) -> 'PipelineConfig':
        """Reads a YAML config; keys it leaves out keep their defaults, relative paths are taken
        relative to the YAML file."""
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        if not isinstance(values, dict):
            raise ConfigError(f'{path}: expected a mapping at the top level')
        base_dir = os.path.dirname(os.path.abspath(path))
        for key in ('data', 'schema'):
            if key in values and not os.path.isabs(values[key]) and '://' not in values[key]:
                values[key] = os.path.join(base_dir, values[key])
        try:
            return cls.from_dict(values)
        except ConfigError as e:
            raise ConfigError(f'{path}: {e}') from None

    def with_overrides(self, assignments: List[str]) -> 'PipelineConfig':
        """Applies `key.sub=value` assignments (values parsed as YAML), e.g. `model.num_experts=4`,
        all at once, so that they may change things that only agree together."""
        changes: Dict[str, Any] = {}
        for assignment in assignments:
            key, sep, raw = assignment.partition('=')
            if not sep:
                raise ConfigError(f'--set {assignment!r}: expected KEY=VALUE')
            *parents, leaf = key.strip().split('.')
            node = changes
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = yaml.safe_load(raw)
        return _replace(self, changes, 'config')

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)


def _check_sample_space(task: Task, tasks: Dict[str, Task]):
    """A task's `given`: another task, whose binary label marks the rows of this one's sample
    space."""
    where = f'tasks.{task.name}.given'
    if task.given == task.name:
        raise ConfigError(f'{where}: a task cannot be trained only where its own label is 1')
    if task.given not in tasks:
        raise ConfigError(f'{where}: {task.given!r} is not a task (tasks: {sorted(tasks)})')
    space = tasks[task.given]
    if not space.kind.binary_labels:
        raise ConfigError(f'{where}: {task.given!r} is a {space.type} task; a sample space is the '
                          'rows where a binary label is 1')
    if space.given is not None:
        raise ConfigError(f'{where}: {task.given!r} has a sample space of its own '
                          f'({space.given!r}); name the task whose rows both are on')


def _check_gate(task: Task, group_by: Optional[str]):
    """A task's gate, each bound one that can refuse a model: a bound that cannot (an AUC floor
    below 0, an AUC change bound beyond what AUC can move) would switch the gate off unnoticed."""
    where, gate, kind = f'tasks.{task.name}.gate', task.gate, task.kind
    try:
        metric = task.gated_metric
    except KeyError:
        raise ConfigError(f'{where}.metric: {gate.metric!r} is not a metric a {task.type} task '
                          f'can be gated on {tuple(m.name for m in kind.gated_metrics)}') from None
    if metric.needs_groups and group_by is None:
        raise ConfigError(f'{where}.metric: {metric.name} is computed within the groups of '
                          'evaluation.group_by (e.g. user_id), which is unset')
    if gate.change_test not in CHANGE_TESTS:
        raise ConfigError(f'{where}.change_test: {gate.change_test!r} is not one of '
                          f'{CHANGE_TESTS}')
    if not 0.5 <= gate.confidence < 1:
        raise ConfigError(f'{where}.confidence: must be in [0.5, 1), got {gate.confidence}')
    # A floor of a metric that is better higher, a ceiling of one better lower: the other side
    # would refuse a model for being too good.
    useless = 'max' if metric.higher_is_better else 'min'
    if getattr(gate, useless) is not None:
        raise ConfigError(f'{where}.{useless}: {metric.name} is better '
                          f'{metric.direction}: gate it with '
                          f'{"min" if useless == "max" else "max"}, not {useless}')
    # TFMA ignores change thresholds until there is a baseline, and blesses nothing without a
    # threshold it can check: a metric without a default bound needs one.
    bound_key = 'max' if useless == 'min' else 'min'
    low, high = metric.value_range
    if task.bound is None:
        raise ConfigError(f'{where}.{bound_key}: a {task.type} task gated on {metric.name} needs '
                          f'a bound (for the mean squared error, e.g. the label variance)')
    if not low <= task.bound <= high or (high == math.inf and task.bound <= low):
        raise ConfigError(f'{where}.{bound_key}: {metric.name} lies in [{low}, {high}]'
                          f'{", above 0" if high == math.inf else ""}, got {task.bound}')
    if gate.max_decrease < 0:
        raise ConfigError(f'{where}.max_decrease: must be 0 or more (how much worse than the '
                          f'baseline the candidate may be), got {gate.max_decrease}')
    if gate.max_decrease > metric.max_decrease_limit:
        raise ConfigError(f'{where}.max_decrease: {metric.name} falling by more than '
                          f'{metric.max_decrease_limit} never refuses a model better than '
                          f'chance, got {gate.max_decrease}')
    bound = gate.calibration
    if (bound.min, bound.max) != (None, None):
        if kind.calibration is None:
            raise ConfigError(f'{where}.calibration: a {task.type} task predicts no probability '
                              'to calibrate')
        for side in ('min', 'max'):
            value = getattr(bound, side)
            if value is not None and value <= 0:
                raise ConfigError(f'{where}.calibration.{side}: a calibration (mean prediction / '
                                  f'mean label) is above 0, got {value}')
        if bound.min is not None and bound.max is not None and bound.min > bound.max:
            raise ConfigError(f'{where}.calibration.min: above calibration.max ({bound.min} > '
                              f'{bound.max})')


def _numbers(value, where: str):
    """(key, number) of every float in a config, nested dataclasses and lists included, keyed as
    its errors name them (`tasks.ctr.max_decrease`). Whole numbers are exact, so left out."""
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from _numbers(getattr(value, field.name),
                                f'{where}.{field.name}' if where else field.name)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            name = getattr(item, 'name', getattr(item, 'feature', index))
            yield from _numbers(item, f'{where}.{name}')
    elif isinstance(value, float):
        yield where, value


def _plain(value):
    """Tuples become lists so that YAML stays readable."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# Keys of earlier versions, and what replaced them.
_REPLACED_KEYS = {
    'config.train_eval_split': 'split_shares (train, validation and eval, e.g. [8, 1, 1])',
    'config.training.steps_per_epoch': 'training.evaluations_per_epoch (evaluations per pass over '
                                       'the training split; how long to train is training.epochs)',
}


def _replace(instance, values: Dict[str, Any], where: str):
    """A copy of dataclass `instance` with `values` applied, converting nested dicts and lists."""
    if not isinstance(values, dict):
        raise ConfigError(f'{where}: expected a mapping, got {values!r}')
    fields = {f.name: f for f in dataclasses.fields(instance)}
    changes = {}
    for key, value in values.items():
        if f'{where}.{key}' in _REPLACED_KEYS:
            raise ConfigError(f'{where}.{key}: no longer a setting; see '
                              f'{_REPLACED_KEYS[f"{where}.{key}"]}')
        if key not in fields:
            raise ConfigError(f'{where}.{key}: unknown key (known: {sorted(fields)})')
        changes[key] = _convert(getattr(instance, key), value, f'{where}.{key}', fields[key])
    try:
        return dataclasses.replace(instance, **changes)
    except TypeError as e:
        raise ConfigError(f'{where}: {e}') from None


_ITEM_TYPES = {**{kind.section: kind.config for kind in features.KINDS}, 'tasks': Task,
               'drift': DriftBound}


def _task_item(item: Dict[str, Any], where: str) -> Dict[str, Any]:
    """A task's mapping with its `gate` a Gate, its bounds under the keys of earlier versions
    moved into the gate (with a warning that shows the new form)."""
    item = dict(item)
    where = f"tasks.{item.get('name', where)}"
    for key in item:
        if not isinstance(key, str):
            raise ConfigError(f'{where}: {key!r} is not a key (YAML reads on, off, yes and no '
                              'unquoted as true and false)')
    gate = dict(item.pop('gate', None) or {})
    old = {key: item.pop(key) for key in list(item) if key in _OLD_TASK_KEYS}
    for key, value in old.items():
        gate_key, metric = _OLD_TASK_KEYS[key]
        if gate_key in gate:
            raise ConfigError(f'{where}.{key}: set twice, here and as gate.{gate_key}')
        gate[gate_key] = value
        if metric is not None:
            gate.setdefault('metric', metric)
    if old:
        new_form = ', '.join(f'{k}: {v}' for k, v in sorted(gate.items(),
                                                             key=lambda kv: kv[0] != 'metric'))
        warnings.warn(f'{where}: {", ".join(old)} will stop being read; write '
                      f'gate: {{{new_form}}}', FutureWarning, stacklevel=2)
    item['gate'] = _replace(Gate(), gate, f'{where}.gate')
    return item


_EXPONENT = re.compile(r'[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+')


def _convert(current, value, where, field):
    if dataclasses.is_dataclass(current):
        return _replace(current, value, where)
    item_type = _ITEM_TYPES.get(field.name)
    if item_type is not None:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list')
        items = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                item = {'name': item}
            if not isinstance(item, dict):
                raise ConfigError(f'{where}[{i}]: expected a name or a mapping, got {item!r}')
            if item_type is Task:
                item = _task_item(item, f'{where}[{i}]')
            try:
                items.append(item_type(**item))
            except TypeError as e:
                raise ConfigError(f'{where}[{i}]: {e}') from None
        return tuple(items)
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list, got {value!r}')
        return tuple(value)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true or false, got {value!r}')
        return value
    if isinstance(current, float) and isinstance(value, str) and _EXPONENT.fullmatch(value):
        # YAML 1.1 (PyYAML) reads 1e-4 as a string: it wants a dot, 1.0e-4. Both are numbers.
        return float(value)
    if isinstance(current, (int, float)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f'{where}: expected a number, got {value!r}')
        return type(current)(value) if isinstance(current, float) else value
    return value
