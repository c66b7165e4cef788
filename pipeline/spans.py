"""Data laid out by day: which spans a data directory holds, which one a run judges on, and which
ones it trains on.

A `csv_pattern` with TFX's span spec (`span-{SPAN}/*.csv`, also `{SPAN:3}` for zero-padded
numbers) or its date specs (`{YYYY}-{MM}-{DD}/*.csv`, the span being the day's number since
1970-01-01, as TFX counts) makes a run continuous training: it reads one span with ExampleGen (the
newest, or the one asked for), judges the candidate on every row of it, and trains on the
`training.window_spans` spans before it, read by earlier runs (`SpanPlan`). The first span of a
directory has none before it: that run trains and judges on hash splits of its own rows, as a run
on files without spans does.

Everything here reads file names only, so that a missing span or a refused backfill stops the run
before any component does.
"""

import datetime
import glob
import os
import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

from pipeline.config import ConfigError

# TFX's specs (tfx.components.example_gen.utils, which imports TensorFlow: these checks run before
# it loads). A span's width, `{SPAN:3}`, pads its number with zeros.
_SPAN = re.compile(r'\{SPAN(?::(?P<width>[^}]*))?\}')
_DATE_GROUPS = {'{YYYY}': r'(?P<year>\d{4})', '{MM}': r'(?P<month>\d{2})', '{DD}': r'(?P<day>\d{2})'}
# TFX numbers a date's span by its days since this one.
_EPOCH = datetime.date(1970, 1, 1)


def by_span(pattern: str) -> bool:
    """Whether a file pattern names its files by span or by date (TFX's specs)."""
    return bool(_SPAN.search(pattern)) or any(spec in pattern for spec in _DATE_GROUPS)


def _by_date(pattern: str) -> bool:
    return not _SPAN.search(pattern)


def check_pattern(pattern: str, key: str):
    """Refuses a span pattern TFX's ExampleGen would refuse or read otherwise, naming `key`."""
    spans = len(_SPAN.findall(pattern))
    dates = [pattern.count(spec) for spec in _DATE_GROUPS]
    if spans > 1 or any(count > 1 for count in dates):
        raise ConfigError(f'{key}: {pattern!r} names the span more than once')
    if spans and any(dates):
        raise ConfigError(f'{key}: {pattern!r} has both {{SPAN}} and a date: use one of them')
    if any(dates) and not all(dates):
        raise ConfigError(f'{key}: {pattern!r} needs all of {{YYYY}}, {{MM}} and {{DD}}')
    if '{VERSION' in pattern:
        raise ConfigError(f'{key}: {pattern!r}: {{VERSION}} is not supported; a span\'s files '
                          'are read as they are when its run reads them')


def _regex(pattern: str) -> re.Pattern:
    """`pattern` (a glob with a span or date spec) as a regex whose groups give the span."""
    specs = '(' + '|'.join([r'\{SPAN(?::[^}]*)?\}', *map(re.escape, _DATE_GROUPS)]) + ')'
    out = []
    for part in filter(None, re.split(specs, pattern)):
        if _SPAN.fullmatch(part):
            out.append(r'(?P<span>\d+)')
        elif part in _DATE_GROUPS:
            out.append(_DATE_GROUPS[part])
        else:
            out.append(re.escape(part).replace(r'\*', '[^/]*').replace(r'\?', '[^/]'))
    return re.compile(''.join(out) + '$')


def _glob(pattern: str) -> str:
    """`pattern` with its span or date specs as wildcards."""
    pattern = _SPAN.sub('*', pattern)
    for spec in _DATE_GROUPS:
        pattern = pattern.replace(spec, '*')
    return pattern


def find(data_dir: str, pattern: str) -> Dict[int, List[str]]:
    """{span: its files} of the files under `data_dir` that `pattern` matches. A date that is no
    calendar day is refused, naming the file."""
    regex = _regex(pattern)
    found: Dict[int, List[str]] = {}
    for path in sorted(glob.glob(os.path.join(data_dir, _glob(pattern)))):
        match = regex.search(os.path.relpath(path, data_dir))
        if match is None:
            continue
        if 'span' in match.groupdict():
            span = int(match['span'])
        else:
            try:
                span = (datetime.date(int(match['year']), int(match['month']), int(match['day']))
                        - _EPOCH).days
            except ValueError:
                raise ConfigError(f'data: {path}: its date is not a calendar day') from None
        found.setdefault(span, []).append(path)
    return found


def name(pattern: str, span: int) -> str:
    """How a person names `span` in this layout: `span 3`, or `span 20424 (2025-12-02)`."""
    if _by_date(pattern):
        return f'span {span} ({_EPOCH + datetime.timedelta(days=span)})'
    return f'span {span}'


def files_of(pattern: str, span: int) -> str:
    """`pattern` with `span` filled in (zero-padded to its width), or its date."""
    if _by_date(pattern):
        date = _EPOCH + datetime.timedelta(days=span)
        for spec, value in zip(_DATE_GROUPS, (f'{date.year:04d}', f'{date.month:02d}',
                                               f'{date.day:02d}')):
            pattern = pattern.replace(spec, value)
        return pattern
    return _SPAN.sub(lambda m: str(span).zfill(int(m['width'] or 0)), pattern)


def training_window(span: int, spans: Iterable[int], window_spans: int
                    ) -> Tuple[Tuple[int, ...], List[int]]:
    """(the window of a run on `span`: the `window_spans` spans before it, none before the first
    of `spans` (the spans there are); those of them missing from `spans`). Empty when no span of
    `spans` is before `span`: a first span trains on its own rows."""
    there = set(spans)
    earlier = [s for s in there if s < span]
    if not earlier:
        return (), []
    window = tuple(range(max(min(earlier), span - window_spans), span))
    return window, [s for s in window if s not in there]


class SpanPlan(NamedTuple):
    """What one run reads: `span`, the span ExampleGen reads and the Evaluators judge on, and
    `window`, the spans before it that the Trainer learns from, oldest first (empty for a first
    span: then the run trains and judges on hash splits of `span`'s rows)."""
    span: int
    window: Tuple[int, ...]


def plan(data_dir: str, pattern: str, window_spans: int, span: Optional[int] = None,
         serving_span: Optional[int] = None, backfill: bool = False) -> SpanPlan:
    """The run on `span` (default: the newest in `data_dir`), trained on up to `window_spans`
    spans before it. Refuses, naming the span: a span without files, a gap in the window (a day
    missing: the run would silently train on less than it says), and a span older than
    `serving_span` (the newest span a blessed model was judged on) unless `backfill`."""
    found = find(data_dir, pattern)
    if not found:
        raise ConfigError(f'data: no file matches {pattern} in {data_dir}')
    if span is None:
        span = max(found)
    elif span not in found:
        raise ConfigError(f'data: {name(pattern, span)} is missing: no file matches '
                          f'{files_of(pattern, span)} in {data_dir}')
    if serving_span is not None and span < serving_span and not backfill:
        raise ConfigError(
            f'--span: {name(pattern, span)} is older than {name(pattern, serving_span)}, which the '
            'serving model was judged on; to train and judge on older data on purpose, add '
            '--backfill')
    window, missing = training_window(span, found, window_spans)
    if missing:
        raise ConfigError(
            f'data: {name(pattern, missing[0])} is missing (no file matches '
            f'{files_of(pattern, missing[0])} in {data_dir}), and {name(pattern, span)} trains '
            f'on {name(pattern, window[0])} to {name(pattern, window[-1])} '
            '(training.window_spans): add its files, or set window_spans to train on fewer')
    return SpanPlan(span, window)
