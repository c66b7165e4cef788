"""The resolvers of continuous training (components/span_window.py) on TFX's own artifacts: the
window takes, per span, the newest examples whose data checks passed; the warm start takes the
model blessed on the newest span before the run's."""

import pytest
from tfx.types import standard_artifacts

from components.anomaly_check import CheckedStatistics
from components.span_window import (
    BLESSING_KEY,
    CHECKED_KEY,
    EXAMPLES_ID,
    EXAMPLES_KEY,
    MODEL_KEY,
    SPAN,
    LatestBlessedBeforeStrategy,
    WindowStrategy,
)


def _examples(artifact_id, span):
    examples = standard_artifacts.Examples()
    examples.id = artifact_id
    examples.set_int_custom_property(SPAN, span)
    return examples


def _checked(artifact_id, examples):
    checked = CheckedStatistics()
    checked.id = artifact_id
    checked.set_int_custom_property(EXAMPLES_ID, examples.id)
    checked.set_int_custom_property(SPAN, examples.get_int_custom_property(SPAN))
    return checked


def test_the_window_takes_the_newest_checked_examples_of_each_span():
    first_1, refused_2, passed_2, later_refused_2, only_3 = (
        _examples(1, 1), _examples(2, 2), _examples(3, 2), _examples(4, 2), _examples(5, 3))
    checked = [_checked(10, first_1), _checked(11, passed_2), _checked(12, only_3)]
    resolved = WindowStrategy(first=1, last=2).resolve_artifacts(None, {
        EXAMPLES_KEY: [only_3, later_refused_2, passed_2, refused_2, first_1],
        CHECKED_KEY: checked})
    # Span 2 was read three times: the examples whose checks failed (before and after) are left
    # out; span 3 is not in the window.
    assert [a.id for a in resolved[EXAMPLES_KEY]] == [1, 3]
    assert resolved[CHECKED_KEY] == checked


def test_a_window_span_without_checked_examples_fails_the_resolver_naming_it():
    span_1 = _examples(1, 1)
    with pytest.raises(RuntimeError, match='span 2 of the training window has no examples that '
                                           'passed the data checks'):
        WindowStrategy(first=1, last=2).resolve_artifacts(None, {
            EXAMPLES_KEY: [span_1, _examples(2, 2)], CHECKED_KEY: [_checked(10, span_1)]})


def _model(artifact_id):
    model = standard_artifacts.Model()
    model.id = artifact_id
    return model


def _blessing(artifact_id, model, span, blessed=True):
    blessing = standard_artifacts.ModelBlessing()
    blessing.id = artifact_id
    blessing.set_int_custom_property('blessed', int(blessed))
    blessing.set_int_custom_property('current_model_id', model.id)
    if span is not None:
        blessing.set_int_custom_property(SPAN, span)
    return blessing


def test_warm_start_takes_the_model_blessed_on_the_newest_span_before_the_runs():
    on_1, on_2, refused_on_3, on_4, backfill_1 = (_model(i) for i in range(1, 6))
    blessings = [_blessing(11, on_1, 1), _blessing(12, on_2, 2),
                 _blessing(13, refused_on_3, 3, blessed=False), _blessing(14, on_4, 4),
                 _blessing(15, backfill_1, 1)]
    models = [on_1, on_2, refused_on_3, on_4, backfill_1]

    def base_of(span):
        resolved = LatestBlessedBeforeStrategy(span=span).resolve_artifacts(
            None, {MODEL_KEY: models, BLESSING_KEY: blessings})
        return [m.id for m in resolved[MODEL_KEY]], [b.id for b in resolved[BLESSING_KEY]]

    # Span 4's run, the first time and when repeated after it blessed: span 2's model (span 3
    # refused), never span 4's own.
    assert base_of(4) == ([2], [12])
    # Span 5: span 4's; a backfill of span 1 blessed later does not displace it.
    assert base_of(5) == ([4], [14])
    # Span 2: the newer of span 1's two blessed models.
    assert base_of(2) == ([5], [15])
    assert base_of(1) == ([], [])


def test_blessings_without_a_span_are_not_warm_start_bases():
    model = _model(1)
    resolved = LatestBlessedBeforeStrategy(span=3).resolve_artifacts(
        None, {MODEL_KEY: [model], BLESSING_KEY: [_blessing(11, model, None)]})
    assert resolved == {MODEL_KEY: [], BLESSING_KEY: []}
