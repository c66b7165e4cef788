"""Data by span (pipeline/spans.py): the spans a directory holds, by number or by date, the run's
span and training window, and the refusals of a missing span, a gap in the window, an older span
than the serving model's and span patterns TFX would read otherwise; the config's checks."""

import datetime

import pytest

from pipeline import spans
from pipeline.config import ConfigError, PipelineConfig


def _layout(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('a,b\n1,2\n')
    return str(root)


def test_spans_by_number_with_and_without_padding(tmp_path):
    data = _layout(tmp_path, ['span-1/a.csv', 'span-1/b.csv', 'span-2/a.csv', 'span-10/a.csv',
                              'span-x/a.csv', 'other/a.csv', 'span-3/a.txt'])
    found = spans.find(data, 'span-{SPAN}/*.csv')
    assert sorted(found) == [1, 2, 10]
    assert [p.rsplit('/', 2)[-2:] for p in found[1]] == [['span-1', 'a.csv'], ['span-1', 'b.csv']]
    assert spans.files_of('span-{SPAN:3}/*.csv', 7) == 'span-007/*.csv'
    assert spans.files_of('span-{SPAN}/*.csv', 7) == 'span-7/*.csv'
    assert sorted(spans.find(_layout(tmp_path / 'padded', ['span-007/a.csv', 'span-012/a.csv']),
                             'span-{SPAN:3}/*.csv')) == [7, 12]


def test_spans_by_date_are_days_since_1970_as_tfx_counts(tmp_path):
    data = _layout(tmp_path, ['2026-12-01/a.csv', '2026-12-02/a.csv', '2026-13-01/a.csv'])
    pattern = '{YYYY}-{MM}-{DD}/*.csv'
    with pytest.raises(ConfigError, match='2026-13-01/a.csv: its date is not a calendar day'):
        spans.find(data, pattern)
    (tmp_path / '2026-13-01' / 'a.csv').unlink()
    day = (datetime.date(2026, 12, 2) - datetime.date(1970, 1, 1)).days
    assert sorted(spans.find(data, pattern)) == [day - 1, day]
    assert spans.files_of(pattern, day) == '2026-12-02/*.csv'
    assert spans.name(pattern, day) == f'span {day} (2026-12-02)'


def test_the_plan_judges_on_the_newest_span_and_trains_on_the_window_before_it(tmp_path):
    data = _layout(tmp_path, [f'span-{k}/a.csv' for k in range(1, 6)])
    pattern = 'span-{SPAN}/*.csv'
    assert spans.plan(data, pattern, window_spans=2) == spans.SpanPlan(5, (3, 4))
    assert spans.plan(data, pattern, window_spans=7) == spans.SpanPlan(5, (1, 2, 3, 4))
    assert spans.plan(data, pattern, window_spans=2, span=3) == spans.SpanPlan(3, (1, 2))
    # The first span has nothing before it: it trains on hash splits of its own rows.
    assert spans.plan(data, pattern, window_spans=2, span=1) == spans.SpanPlan(1, ())


def test_a_missing_span_or_a_gap_in_the_window_is_refused_naming_it(tmp_path):
    data = _layout(tmp_path, ['span-1/a.csv', 'span-2/a.csv', 'span-4/a.csv'])
    pattern = 'span-{SPAN}/*.csv'
    with pytest.raises(ConfigError, match=r'span 5 is missing: no file matches span-5/\*.csv'):
        spans.plan(data, pattern, window_spans=2, span=5)
    with pytest.raises(ConfigError, match=r'span 3 is missing .*span 4 trains on span 2 to span 3'):
        spans.plan(data, pattern, window_spans=2)
    # With a window that does not reach the gap, the run goes on.
    assert spans.plan(data, pattern, window_spans=1, span=2) == spans.SpanPlan(2, (1,))
    with pytest.raises(ConfigError, match='no file matches span-{SPAN}/\\*.csv in'):
        spans.plan(str(tmp_path / 'empty'), pattern, window_spans=1)


def test_an_older_span_than_the_serving_models_needs_backfill(tmp_path):
    data = _layout(tmp_path, [f'span-{k}/a.csv' for k in range(1, 4)])
    pattern = 'span-{SPAN}/*.csv'
    with pytest.raises(ConfigError, match='span 2 is older than span 3, which the serving model '
                                          'was judged on; .* add --backfill'):
        spans.plan(data, pattern, window_spans=1, span=2, serving_span=3)
    assert spans.plan(data, pattern, window_spans=1, span=2, serving_span=3,
                      backfill=True) == spans.SpanPlan(2, (1,))
    # The serving model's own span again is a rerun, not a backfill.
    assert spans.plan(data, pattern, window_spans=1, serving_span=3) == spans.SpanPlan(3, (2,))


@pytest.mark.parametrize('values, named', [
    ({'csv_pattern': 'span-{SPAN}/{SPAN}.csv'}, "csv_pattern: 'span-{SPAN}/{SPAN}.csv' names the "
                                                'span more than once'),
    ({'csv_pattern': '{YYYY}-{MM}/*.csv'}, 'needs all of {YYYY}, {MM} and {DD}'),
    ({'csv_pattern': 'span-{SPAN}/{YYYY}-{MM}-{DD}.csv'}, 'has both {SPAN} and a date'),
    ({'csv_pattern': 'span-{SPAN}/v{VERSION}/*.csv'}, '{VERSION} is not supported'),
    ({'csv_pattern': 'span-{SPAN}/*.csv', 'eval_csv_pattern': 'eval/*.csv'},
     'eval_csv_pattern: with csv_pattern by span'),
    ({'eval_csv_pattern': 'span-{SPAN}/*.csv'}, "eval_csv_pattern: 'span-{SPAN}/*.csv' names a span"),
    ({'training': {'window_spans': 0}}, 'training.window_spans: must be a whole number'),
    ({'training': {'warm_start': True}}, 'training.warm_start: needs data by span'),
])
def test_the_config_refuses_span_settings_naming_the_key(values, named):
    with pytest.raises(ConfigError) as error:
        PipelineConfig.from_dict(values)
    assert named in str(error.value)


def test_a_span_layout_with_warm_start_is_a_valid_config():
    config = PipelineConfig.from_dict({'csv_pattern': '{YYYY}-{MM}-{DD}/*.csv',
                                       'training': {'warm_start': True, 'window_spans': 3}})
    assert spans.by_span(config.csv_pattern) and not spans.by_span(PipelineConfig().csv_pattern)
