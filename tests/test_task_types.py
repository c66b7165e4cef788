"""The task types (trainer_module/task_types/): each definition holds what its type means, and the
config, the Trainer, the Evaluators' configs and the gate ask it: a new type is one definition."""

import dataclasses

import numpy as np
import pytest
from tensorflow_model_analysis.metrics import metric_types

from pipeline.config import Gate, PipelineConfig, Task
from pipeline.evaluation import OUR_METRICS, eval_config, interval_tests
from trainer_module.task_types import METRICS, TASK_TYPES
from trainer_module.task_types.binary import BINARY


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(float)
    candidate = np.clip(0.3 * labels + 0.7 * rng.random(n), 0, 1)
    baseline = rng.random(n)
    groups = np.array([f'u{i}' for i in rng.integers(0, 40, n)], dtype=object)
    return labels, candidate, baseline, groups


@pytest.mark.parametrize('name', sorted(TASK_TYPES))
def test_each_type_makes_its_loss_and_training_metrics(name):
    kind = TASK_TYPES[name]
    assert type(kind.make_loss()).__name__ == kind.loss
    assert [m.name for m in kind.make_training_metrics()] == [m.name for m in kind.training_metrics]
    assert [type(m).__name__ for m in kind.make_training_metrics()] == [
        m.keras_class for m in kind.training_metrics]
    for metric in kind.training_metrics:
        assert kind.training_metric(metric.name) is metric
    with pytest.raises(KeyError):
        kind.training_metric('no_such_metric')
    assert kind.default_metric is kind.gated_metrics[0]
    assert kind.gated_metric(None) is kind.default_metric
    with pytest.raises(KeyError):
        kind.gated_metric('no_such_metric')


@pytest.mark.parametrize('name', sorted(METRICS))
def test_each_metric_is_computed_by_a_tfma_metric_and_has_an_interval(name):
    """TFMA's own or one of ours; its interval on data within its range, and a model against
    itself changes by nothing."""
    metric = METRICS[name]
    assert metric.tfma_class in OUR_METRICS or metric.tfma_class in \
        metric_types.registered_metrics(), metric.tfma_class
    labels, candidate, baseline, groups = _data()
    groups = groups if metric.needs_groups else None
    interval = metric.interval(labels, candidate, groups, 0.95)
    low, high = metric.value_range
    assert low <= interval.lower <= interval.value <= interval.upper <= high
    if metric.change_interval is not None:
        change = metric.change_interval(labels, candidate, candidate, groups, 0.95)
        assert (change.value, change.lower, change.upper) == pytest.approx((0, 0, 0), abs=1e-12)
        worse = metric.change_interval(labels, candidate, baseline, groups, 0.95)
        assert (worse.value > 0) == bool(metric.higher_is_better)


def _class_name(tfma_class: str) -> str:
    """The class an Evaluator's config names for a TFMA metric: ours where we implement it."""
    return OUR_METRICS[tfma_class].__name__ if tfma_class in OUR_METRICS else tfma_class


@pytest.mark.parametrize('name', sorted(TASK_TYPES))
def test_the_evaluator_computes_the_types_metrics_and_gates_on_the_tasks(name):
    kind = TASK_TYPES[name]
    for metric in kind.gated_metrics:
        gate = Gate(metric=metric.name, max=None if metric.higher_is_better else 1.0)
        task = Task('t', 'click', type=name, gate=gate)
        config = eval_config(PipelineConfig(), task)
        classes = [m.class_name for spec in config.metrics_specs for m in spec.metrics]
        thresholds = [m.class_name for spec in config.metrics_specs for m in spec.metrics
                      if m.per_slice_thresholds]
        assert thresholds == [_class_name(metric.tfma_class)], (metric.name, classes)
        assert all(_class_name(reported) in classes for reported in kind.reported_metrics)
        test = interval_tests(task)
        assert (test['metric'], test['direction']) == (metric.name, metric.direction)


def test_a_new_task_type_is_one_definition(monkeypatch):
    """A type registered in TASK_TYPES is accepted by the config, trained with its loss and
    judged on its metrics, with nothing else changed."""
    kind = dataclasses.replace(BINARY, name='conversion', loss='BinaryFocalCrossentropy')
    monkeypatch.setitem(TASK_TYPES, 'conversion', kind)
    config = PipelineConfig().with_overrides([
        'tasks=[{name: ctr, label: click}, {name: cvr, label: purchase, type: conversion}]'])
    assert config.tasks[1].kind is kind and config.tasks[1].gated_metric.name == 'auc'
    assert type(config.tasks[1].kind.make_loss()).__name__ == 'BinaryFocalCrossentropy'
    assert eval_config(config, config.tasks[1]).metrics_specs[0].metrics
    with pytest.raises(ValueError, match="'ranking' is not one of"):
        PipelineConfig().with_overrides([
            'tasks=[{name: ctr, label: click}, {name: cvr, label: purchase, type: ranking}]'])


def test_the_default_tasks_name_their_gated_metric():
    assert [task.gate.metric for task in PipelineConfig().tasks] == ['auc', 'auc']
    assert PipelineConfig().evaluation.group_by == 'user_id'
