"""The intervals the gate decides on (trainer_module/task_types/statistics.py), checked on tiny
data against brute force: AUC by counting pairs, standard errors by a paired bootstrap; and the
TFMA metric that computes them through the task types (components/intervals.py). The group AUC's
own: test_group_auc.py."""

import numpy as np
import pytest
import tensorflow_model_analysis as tfma

from components import intervals
from trainer_module.task_types import group_auc, statistics

BOOTSTRAP_SAMPLES = 2000


def _scores(n=300, seed=0):
    """Labels and two correlated models' scores: the candidate a little better."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(float)
    shared = rng.normal(size=n)
    candidate = 0.9 * labels + shared + 0.5 * rng.normal(size=n)
    baseline = 0.7 * labels + shared + 0.5 * rng.normal(size=n)
    return labels, 1 / (1 + np.exp(-candidate)), 1 / (1 + np.exp(-baseline))


def _pair_count_auc(labels, scores):
    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return (wins + 0.5 * ties) / (len(positives) * len(negatives))


def _bootstrap_sd(statistic, *columns, seed=1):
    """The standard deviation of `statistic` over paired resamples of the examples."""
    rng = np.random.default_rng(seed)
    n = len(columns[0])
    values = []
    for _ in range(BOOTSTRAP_SAMPLES):
        index = rng.integers(0, n, n)
        values.append(statistic(*(column[index] for column in columns)))
    return np.std(values, ddof=1)


def _half_width_sd(interval, confidence=0.95):
    """The standard error an interval was built from."""
    return (interval.upper - interval.lower) / 2 / statistics.z(confidence)


def test_delong_auc_is_the_pair_count_with_ties_half():
    labels = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.1, 0.4, 0.4, 0.8, 0.7, 0.2, 0.35])
    aucs, _ = statistics.delong(labels, scores[None, :])
    assert aucs[0] == pytest.approx(_pair_count_auc(labels, scores))
    labels, candidate, baseline = _scores()
    aucs, _ = statistics.delong(labels, np.vstack([candidate, baseline]))
    assert aucs == pytest.approx([_pair_count_auc(labels, candidate),
                                  _pair_count_auc(labels, baseline)])


def test_delong_standard_errors_match_a_paired_bootstrap():
    labels, candidate, baseline = _scores()
    one = statistics.auc_interval(labels, candidate, 0.95)
    change = statistics.auc_change_interval(labels, candidate, baseline, 0.95)
    assert one.value == pytest.approx(_pair_count_auc(labels, candidate))
    assert change.value == pytest.approx(
        _pair_count_auc(labels, candidate) - _pair_count_auc(labels, baseline))
    auc_sd = _bootstrap_sd(_pair_count_auc, labels, candidate)
    change_sd = _bootstrap_sd(lambda y, c, b: _pair_count_auc(y, c) - _pair_count_auc(y, b),
                              labels, candidate, baseline)
    assert _half_width_sd(one) == pytest.approx(auc_sd, rel=0.12)
    assert _half_width_sd(change) == pytest.approx(change_sd, rel=0.12)
    # Pairing matters: the two models share most of their errors, so the change is known far
    # better than either AUC.
    assert change_sd < 0.8 * auc_sd


def test_mean_squared_error_and_calibration_intervals_match_a_bootstrap():
    labels, candidate, baseline = _scores()
    mse = lambda y, p: np.mean((y - p) ** 2)  # noqa: E731
    change = statistics.mse_change_interval(labels, candidate, baseline, 0.95)
    assert change.value == pytest.approx(mse(labels, candidate) - mse(labels, baseline))
    assert _half_width_sd(change) == pytest.approx(
        _bootstrap_sd(lambda y, c, b: mse(y, c) - mse(y, b), labels, candidate, baseline),
        rel=0.12)
    calibration = statistics.calibration_interval(labels, candidate, 0.95)
    assert calibration.value == pytest.approx(candidate.mean() / labels.mean())
    assert _half_width_sd(calibration) == pytest.approx(
        _bootstrap_sd(lambda y, p: p.mean() / y.mean(), labels, candidate), rel=0.12)


def test_a_model_against_itself_changes_by_exactly_nothing():
    labels, candidate, _ = _scores(n=50)
    change = statistics.auc_change_interval(labels, candidate, candidate, 0.95)
    assert (change.value, change.lower, change.upper) == (0.0, 0.0, 0.0)


def test_a_higher_confidence_gives_a_wider_interval():
    labels, candidate, baseline = _scores(n=100)
    narrow = statistics.auc_change_interval(labels, candidate, baseline, 0.8)
    wide = statistics.auc_change_interval(labels, candidate, baseline, 0.99)
    assert wide.lower < narrow.lower < narrow.value < narrow.upper < wide.upper


def test_one_class_has_no_auc_interval():
    interval = statistics.auc_change_interval(np.zeros(5), np.linspace(0, 1, 5), np.ones(5), 0.95)
    assert np.isnan(interval.value) and np.isnan(interval.lower) and np.isnan(interval.upper)


def test_the_tfma_metric_pairs_candidate_and_baseline_per_example():
    """The preprocessor and combiner TFMA runs, on per-example extracts of a candidate and a
    baseline."""
    eval_config = tfma.EvalConfig(model_specs=[
        tfma.ModelSpec(name='candidate', label_key='click'),
        tfma.ModelSpec(name='baseline', label_key='click', is_baseline=True)])
    computations = intervals.Intervals(task_type='binary', confidence=0.9).computations(
        eval_config=eval_config, model_names=['candidate', 'baseline'], output_names=[''])
    assert len(computations) == 1
    [preprocessor], combiner = computations[0].preprocessors, computations[0].combiner
    labels, candidate, baseline = _scores(n=60)
    halves = []
    for part in (slice(0, 25), slice(25, 60)):
        accumulator = combiner.create_accumulator()
        for y, c, b in zip(labels[part], candidate[part], baseline[part]):
            extracts = {'labels': np.array([y]),
                        'predictions': {'candidate': np.array([c]), 'baseline': np.array([b])}}
            for combiner_input in preprocessor.process(extracts):
                accumulator = combiner.add_input(accumulator, combiner_input)
        halves.append(accumulator)
    output = combiner.extract_output(combiner.merge_accumulators(halves))
    keys = {(key.name, key.model_name, key.is_diff) for key in output}
    assert keys == {('auc_interval', 'candidate', False), ('calibration_interval', 'candidate', False),
                    ('auc_interval', 'candidate', True)}
    change = next(value for key, value in output.items() if key.is_diff)
    expected = statistics.auc_change_interval(labels, candidate, baseline, 0.9)
    assert (change.value.value, change.lower_bound.value, change.upper_bound.value) == \
        pytest.approx((expected.value, expected.lower, expected.upper))
    # Without a baseline: the candidate's intervals only.
    alone = intervals.Intervals(task_type='regression').computations(
        eval_config=tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key='minutes')]),
        model_names=[''], output_names=[''])
    assert [key.name for key in alone[0].keys] == ['mean_squared_error_interval']


def test_a_task_gated_on_the_group_auc_gets_its_interval_and_change_from_the_groups():
    eval_config = tfma.EvalConfig(model_specs=[
        tfma.ModelSpec(name='candidate', label_key='click'),
        tfma.ModelSpec(name='baseline', label_key='click', is_baseline=True)])
    [computation] = intervals.Intervals(task_type='binary', gated='gauc', group_by='user').computations(
        eval_config=eval_config, model_names=['candidate', 'baseline'], output_names=[''])
    [preprocessor], combiner = computation.preprocessors, computation.combiner
    labels, candidate, baseline = _scores(n=200)
    users = np.array([f'u{i % 23}' for i in range(200)], dtype=object)
    accumulator = combiner.create_accumulator()
    for part in (slice(0, 80), slice(80, 200)):  # two groups of examples, as SliceGroups gives
        extracts = {'labels': labels[part, None],
                    'predictions': {'candidate': candidate[part, None],
                                    'baseline': baseline[part, None]},
                    tfma.FEATURES_KEY: {'user': users[part]}}
        for combiner_input in preprocessor.process(extracts):
            accumulator = combiner.add_input(accumulator, combiner_input)
    output = {(key.name, key.is_diff): value
              for key, value in combiner.extract_output(accumulator).items()}
    # The gated metric first, then AUC and calibration beside it.
    assert set(output) == {('gauc_interval', False), ('gauc_interval', True),
                           ('auc_interval', False), ('calibration_interval', False)}
    expected = group_auc.gauc_change_interval(labels, candidate, baseline, users, 0.95)
    change = output['gauc_interval', True]
    assert (change.value.value, change.lower_bound.value, change.upper_bound.value) == \
        pytest.approx((expected.value, expected.lower, expected.upper))
