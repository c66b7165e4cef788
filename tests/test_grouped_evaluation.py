"""The Evaluators' grouped extracts and combiners give TFMA's metrics and plots exactly as TFMA's own
per-example path does: the same batched extracts through both, binary and regression, with a
baseline; and each combiner that adds a group at once gives what TFMA's gives one example at a
time, with fractional labels, weights and predictions out of range, and raises TFMA's errors."""

import importlib

import apache_beam as beam
import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from apache_beam.internal import dill_pickler
from apache_beam.testing import util as beam_util
from google.protobuf import json_format
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.extractors import slice_key_extractor, unbatch_extractor
from tensorflow_model_analysis.metrics import calibration, calibration_histogram, metric_types
from tensorflow_model_analysis.utils import config_util

from compat import tfma_combiners
from components import grouped_evaluation
from pipeline.config import EvaluationConfig, Gate, PipelineConfig, Task
from pipeline.evaluation import GROUPED_METRICS, eval_config
from trainer_module.features import SequenceFeature

from helpers import check_grouped_metrics

DEVICES = ['ios', 'android', 'pc']


def _varlen(rows, dtype=None):
    """A VarLenTensorValue of per-row value lists, as TFMA's features extractor gives."""
    indices = [[row, i] for row, values in enumerate(rows) for i in range(len(values))]
    return types.VarLenTensorValue(
        values=np.array([value for values in rows for value in values], dtype=dtype),
        indices=np.array(indices, np.int64).reshape(-1, 2),
        dense_shape=np.array([len(rows), max(map(len, rows))]))


def _batches(task: Task, rows=400, batch=100, seed=3):
    """Batched extracts as TFMA's extractors pass them on after the model: raw features, labels,
    and the candidate's and the baseline's predictions. Some rows have no device."""
    rng = np.random.default_rng(seed)
    devices = [[] if rng.random() < 0.05 else [DEVICES[rng.integers(3)].encode()]
               for _ in range(rows)]
    if task.type == 'binary':
        labels = rng.integers(0, 2, rows)
        candidate = np.clip(labels * 0.3 + rng.random(rows) * 0.7, 0, 1)
        baseline = rng.random(rows)
    else:
        labels = rng.normal(3, 1, rows)
        candidate, baseline = labels + rng.normal(0, 0.5, rows), labels + rng.normal(0, 1, rows)
    for start in range(0, rows, batch):
        part = slice(start, start + batch)
        yield {
            tfma.INPUT_KEY: np.zeros(len(labels[part]), dtype=object),
            tfma.FEATURES_KEY: {'device': _varlen(devices[part], object)},
            tfma.LABELS_KEY: _varlen([[value] for value in labels[part]]),
            tfma.PREDICTIONS_KEY: {
                'candidate': {task.name: candidate[part, None].astype(np.float32)},
                'baseline': {task.name: baseline[part, None].astype(np.float32)}},
            tfma.EXAMPLE_WEIGHTS_KEY: None,
        }


def _configs(task: Task):
    """(our eval config, the same with TFMA's and Keras' own classes), with a baseline."""
    ours = config_util.update_eval_config_with_defaults(
        eval_config(PipelineConfig(evaluation=EvaluationConfig(group_by=None)), task),
        has_baseline=True)
    theirs = tfma.EvalConfig()
    theirs.CopyFrom(ours)
    originals = {cls.__name__: name for name, cls in GROUPED_METRICS.items()}
    for spec in theirs.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name in originals:
                metric.class_name = originals[metric.class_name]
                metric.module = ''
    return ours, theirs


def _as_dicts(results):
    """(slice key, {metric or plot key: value}) pairs -> {(slice key, key): value as a dict}."""
    return {(slice_key, str(key)): json_format.MessageToDict(value) if hasattr(
                value, 'DESCRIPTOR') else value
            for slice_key, values in results for key, value in values.items()}


def _close(ours, theirs):
    if isinstance(theirs, dict):
        return theirs.keys() == ours.keys() and all(_close(ours[k], theirs[k]) for k in theirs)
    if isinstance(theirs, list):
        return len(theirs) == len(ours) and all(map(_close, ours, theirs))
    if isinstance(theirs, (float, np.floating)):
        return np.isclose(ours, theirs, rtol=1e-6, atol=1e-9, equal_nan=True)
    return ours == theirs


@pytest.mark.slow  # TFMA's own pipeline beside ours: 5-13 s
@pytest.mark.parametrize('task', [Task(name='ctr', label='click'),
                                  Task(name='minutes', label='minutes', type='regression',
                                       gate=Gate(max=10.0))], ids=['binary', 'regression'])
@pytest.mark.beam
def test_grouped_extracts_give_tfma_s_own_metrics_and_plots(task):
    ours, theirs = _configs(task)
    batches = list(_batches(task))
    per_example = [unbatch_extractor.UnbatchExtractor(),
                   slice_key_extractor.SliceKeyExtractor(eval_config=theirs, materialize=False)]

    def evaluate(pipeline, name, extractors, config):
        extracts = pipeline | f'Create{name}' >> beam.Create(batches, reshuffle=False)
        for extractor in extractors:
            extracts = extracts | f'{extractor.stage_name}{name}' >> extractor.ptransform
        evaluation = extracts | f'Evaluate{name}' >> (
            tfma.evaluators.MetricsPlotsAndValidationsEvaluator(eval_config=config).ptransform)
        return {kind: evaluation[kind] | f'{kind}{name}' >> beam.combiners.ToList()
                for kind in ('metrics', 'plots')}

    def check(joined, minimum):
        (_, both), = joined
        theirs_, ours_ = (_as_dicts(both[side][0]) for side in ('theirs', 'ours'))
        assert len(theirs_) >= minimum and ours_.keys() == theirs_.keys()
        different = [key for key in theirs_ if not _close(ours_[key], theirs_[key])]
        assert not different, [(key, ours_[key], theirs_[key]) for key in different[:3]]

    with beam.Pipeline() as pipeline:
        results = {'theirs': evaluate(pipeline, 'Theirs', per_example, theirs)}
        # As the Evaluators' executor builds it (components/evaluator.py).
        with tfma_combiners.tfma_combiners_for_groups():
            results['ours'] = evaluate(pipeline, 'Ours', [grouped_evaluation.SliceGroups(ours)],
                                       ours)
        for kind in ('metrics', 'plots'):
            joined = ({side: results[side][kind] | f'Key{kind}{side}' >> beam.Map(
                          lambda values: (None, values)) for side in results}
                      | f'Join{kind}' >> beam.CoGroupByKey())
            # A regression task has no plots.
            minimum = 10 if kind == 'metrics' else 4 * (task.type == 'binary')
            beam_util.assert_that(joined, lambda joined, minimum=minimum: check(joined, minimum),
                                  label=f'Check{kind}')


@pytest.mark.beam
def test_a_batch_is_split_into_groups_of_the_same_slices():
    config = eval_config(PipelineConfig(slice_features=('device',)), Task(name='ctr',
                                                                          label='click'))
    batch = {
        tfma.INPUT_KEY: np.zeros(5, dtype=object),
        tfma.FEATURES_KEY: {'device': _varlen([[b'ios'], [b'pc'], [], [b'ios'], [b'pc']],
                                               object)},
        tfma.LABELS_KEY: _varlen([[1], [0], [1], [0], [1]]),
        tfma.PREDICTIONS_KEY: {'ctr': np.arange(5, dtype=np.float32)[:, None]},
    }

    def check(groups):
        found = {tuple(sorted(group[tfma.SLICE_KEY_TYPES_KEY].tolist())):
                 (group[tfma.LABELS_KEY].tolist(),
                  group[tfma.PREDICTIONS_KEY]['ctr'].ravel().tolist()) for group in groups}
        assert found == {((), (('device', 'ios'),)): ([1, 0], [0.0, 3.0]),
                         ((), (('device', 'pc'),)): ([0, 1], [1.0, 4.0]),
                         ((),): ([1], [2.0])}  # no device: the Overall slice only

    with beam.Pipeline() as pipeline:
        groups = (pipeline | beam.Create([batch], reshuffle=False)
                  | grouped_evaluation.SliceGroups(config).ptransform)
        beam_util.assert_that(groups, check)


@pytest.mark.beam
def test_a_row_of_a_list_feature_is_in_the_slice_of_each_of_its_values():
    config = eval_config(PipelineConfig(slice_features=('hist',), drift=(),
                                        sequence_features=(SequenceFeature('hist'),)),
                         Task(name='ctr', label='click'))
    batch = {
        tfma.INPUT_KEY: np.zeros(3, dtype=object),
        tfma.FEATURES_KEY: {'hist': _varlen([[b'a', b'b'], [b'b', b'b'], []], object)},
        tfma.LABELS_KEY: _varlen([[1], [0], [1]]),
        tfma.PREDICTIONS_KEY: {'ctr': np.arange(3, dtype=np.float32)[:, None]},
    }

    def check(groups):
        rows: dict = {}
        for group in groups:
            for key in group[tfma.SLICE_KEY_TYPES_KEY].tolist():
                rows.setdefault(key, []).extend(group[tfma.PREDICTIONS_KEY]['ctr'].ravel())
        assert {key: sorted(values) for key, values in rows.items()} == {
            (): [0.0, 1.0, 2.0], (('hist', 'a'),): [0.0], (('hist', 'b'),): [0.0, 1.0]}

    with beam.Pipeline() as pipeline:
        groups = (pipeline | beam.Create([batch], reshuffle=False)
                  | grouped_evaluation.SliceGroups(config).ptransform)
        beam_util.assert_that(groups, check)


@pytest.mark.beam
def test_an_eval_example_without_its_label_is_named():
    config = eval_config(PipelineConfig(), Task(name='ctr', label='click'))
    batch = {tfma.INPUT_KEY: np.zeros(3, dtype=object), tfma.FEATURES_KEY: {},
             tfma.LABELS_KEY: _varlen([[1], [], [0]]),
             tfma.PREDICTIONS_KEY: {'ctr': np.zeros((3, 1), np.float32)}}
    with pytest.raises(Exception, match='labels: 1 of 3 eval examples have no value'):
        with beam.Pipeline() as pipeline:
            _ = (pipeline | beam.Create([batch], reshuffle=False)
                 | grouped_evaluation.SliceGroups(config).ptransform)


def _combiners(build):
    """(TFMA's combiner, ours) of the metric computation `build()` makes."""
    theirs = build()[0].combiner
    with tfma_combiners.tfma_combiners_for_groups():
        ours = build()[0].combiner
    assert type(ours) is not type(theirs)
    return theirs, ours


def _combine(combiner, extracts):
    """`extracts` added in two accumulators, merged, as Beam does."""
    halves = []
    for part in (extracts[:len(extracts) // 2], extracts[len(extracts) // 2:]):
        accumulator = combiner.create_accumulator()
        for extract in part:
            accumulator = combiner.add_input(accumulator, extract)
        halves.append(accumulator)
    return combiner.extract_output(combiner.merge_accumulators(halves))


def _inputs(labels, predictions, weights):
    return metric_types.StandardMetricInputs(labels=labels, predictions=predictions,
                                             example_weights=weights)


def _groups(labels, predictions, weights, size):
    """The examples as TFMA's path gives them (one per extract) and as ours does (groups)."""
    single = [_inputs(np.array([label]), np.array([p], np.float32), np.array([w]))
              for label, p, w in zip(labels, predictions, weights)]
    grouped = [_inputs(labels[i:i + size], predictions[i:i + size].astype(np.float32),
                       weights[i:i + size]) for i in range(0, len(labels), size)]
    return single, grouped


@pytest.mark.parametrize('prediction_based', [True, False])
def test_a_group_adds_to_tfma_s_calibration_histogram_as_its_examples_do(prediction_based):
    rng = np.random.default_rng(5)
    labels = np.concatenate([rng.integers(0, 2, 40), rng.random(40)])  # 0/1, then fractional
    predictions = np.concatenate([rng.random(70), [0.0, 1.0, 1.5, -0.2, 0.99995, 1e-5] * 1,
                                  [0.5] * 4])
    weights = np.where(rng.random(80) < 0.1, 0.0, rng.random(80) * 3)
    single, grouped = _groups(labels, predictions, weights, size=9)
    theirs, ours = _combiners(lambda: calibration_histogram.calibration_histogram(
        num_buckets=50, example_weighted=True, prediction_based_bucketing=prediction_based))
    (key, expected), = _combine(theirs, single).items()
    found = _combine(ours, grouped)[key]
    assert [b.bucket_id for b in found] == [b.bucket_id for b in expected]
    for mine, tfma_s in zip(found, expected):
        np.testing.assert_allclose(
            [mine.weighted_labels, mine.weighted_predictions, mine.weighted_examples],
            [tfma_s.weighted_labels, tfma_s.weighted_predictions, tfma_s.weighted_examples],
            rtol=1e-12, atol=1e-12, err_msg=str(mine.bucket_id))


def test_a_group_adds_to_tfma_s_weighted_sums_as_its_examples_do():
    rng = np.random.default_rng(7)
    labels, predictions, weights = rng.integers(0, 2, 50), rng.random(50), rng.random(50)
    single, grouped = _groups(labels, predictions, weights, size=7)
    theirs, ours = _combiners(lambda: calibration._weighted_labels_predictions_examples(  # pylint: disable=protected-access
        example_weighted=True))
    (key, expected), = _combine(theirs, single).items()
    found = _combine(ours, grouped)[key]
    for total in ('total_weighted_labels', 'total_weighted_predictions',
                  'total_weighted_examples'):
        assert getattr(found, total) == pytest.approx(getattr(expected, total), rel=1e-12)


@pytest.mark.parametrize('label, prediction, error', [
    (1.5, 0.5, 'label must be within'), (1.0, float('nan'), 'NaN')])
def test_a_group_raises_tfma_s_error_on_what_tfma_refuses(label, prediction, error):
    _, ours = _combiners(lambda: calibration_histogram.calibration_histogram(num_buckets=10))
    group = _inputs(np.array([0.0, label]), np.array([0.3, prediction], np.float32),
                    np.array([1.0]))
    with pytest.raises(ValueError, match=error):
        ours.add_input(ours.create_accumulator(), group)


def test_the_combiners_pickle_after_tfx_reloads_the_evaluators_module():
    """TFX's Evaluator reloads its `module_path` module before TFMA builds the metrics; Beam's
    default pickler (dill, in the Kubeflow containers) must still find our combiners by name."""
    with tfma_combiners.tfma_combiners_for_groups():
        importlib.reload(grouped_evaluation)
        combiners = [calibration_histogram.calibration_histogram(num_buckets=10)[0].combiner,
                     calibration._weighted_labels_predictions_examples()[0].combiner]  # pylint: disable=protected-access
        for combiner in combiners:
            assert type(dill_pickler.loads(dill_pickler.dumps(combiner))) is type(combiner)


@pytest.mark.beam
def test_the_group_auc_through_tfma_is_the_auc_within_each_user_averaged_by_their_rows():
    """The Evaluators' path (grouped extracts, TFMA's evaluator) on batches with a user id per
    row, against pandas' groupby and sklearn's AUC per user: per slice, for both models and their
    difference, with the groups counted."""
    import pandas as pd  # pylint: disable=import-outside-toplevel
    from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel
    task = Task(name='ctr', label='click', gate=Gate(metric='gauc'))
    config = config_util.update_eval_config_with_defaults(
        eval_config(PipelineConfig(slice_features=('device',)), task), has_baseline=True)
    rng = np.random.default_rng(5)
    rows = 600
    frame = pd.DataFrame({'user': rng.integers(0, 60, rows).astype(str).astype(object),
                          'device': np.array(DEVICES, dtype=object)[rng.integers(0, 3, rows)],
                          'click': rng.integers(0, 2, rows)})
    frame['candidate'] = np.clip(frame.click * 0.2 + rng.random(rows) * 0.8, 0, 1)
    frame['baseline'] = np.round(rng.random(rows), 1)  # ties within users
    batches = [{
        tfma.INPUT_KEY: np.zeros(len(part), dtype=object),
        tfma.FEATURES_KEY: {'device': _varlen([[d.encode()] for d in part.device], object),
                            'user_id': _varlen([[u.encode()] for u in part.user], object)},
        tfma.LABELS_KEY: _varlen([[y] for y in part.click]),
        tfma.PREDICTIONS_KEY: {'candidate': {'ctr': part.candidate.to_numpy()[:, None]},
                               'baseline': {'ctr': part.baseline.to_numpy()[:, None]}},
        tfma.EXAMPLE_WEIGHTS_KEY: None} for part in np.array_split(frame, 6)]

    def expected(rows_):
        """{model: GAUC}, the users with both classes, their share of the rows."""
        used = [group for _, group in rows_.groupby('user') if group.click.nunique() == 2]
        weights = sum(len(group) for group in used)
        values = {model: sum(len(group) * roc_auc_score(group.click, group[model])
                             for group in used) / weights
                  for model in ('candidate', 'baseline')}
        return values, len(used), weights / len(rows_)

    def check(results):
        [results] = results
        by_slice = {slice_key: {(key.name, key.model_name, key.is_diff): value
                                for key, value in values.items()}
                    for slice_key, values in results}
        for slice_key, rows_ in [((), frame)] + [
                ((('device', d),), frame[frame.device == d]) for d in DEVICES]:
            values, groups, coverage = expected(rows_)
            got = by_slice[slice_key]
            assert got['gauc', 'candidate', False] == pytest.approx(values['candidate'], abs=1e-9)
            assert got['gauc', 'baseline', False] == pytest.approx(values['baseline'], abs=1e-9)
            assert got['gauc', 'candidate', True] == pytest.approx(
                values['candidate'] - values['baseline'], abs=1e-9)
            assert got['gauc_groups', 'candidate', False] == groups
            assert got['gauc_coverage', 'candidate', False] == pytest.approx(coverage)
            assert got['gauc_interval', 'candidate', True].value.value == pytest.approx(
                values['candidate'] - values['baseline'], abs=1e-9)

    check_grouped_metrics(batches, config, check)

