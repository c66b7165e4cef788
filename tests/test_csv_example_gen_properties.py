"""The CSV reader (csv_example_gen.read_csv) on generated files of good and bad rows: every data row
is kept or set aside, at its own line, whatever bytes the file holds.

The generator writes each file line by line, so it knows, without the reader's code, which lines
are rows (not blank, after the header), which of them are good (and the values their examples
must hold) and which are bad (and why). The line splitting alone: test_csv_lines.py."""

import codecs
import io
from typing import List, NamedTuple, Optional
from unittest import mock

import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

from components import csv_example_gen, csv_lines

from helpers import LINE_LIMIT, PROPERTY_SETTINGS, READ_SIZES, ShortReads

HEADER = ('id', 'count', 'score', 'name')
TYPES = {'id': 'BYTES', 'count': 'INT', 'score': 'FLOAT', 'name': 'BYTES'}
PATH = 'generated.csv'
BOM = codecs.BOM_UTF8
LINE_BREAKS = ('\n', '\r\n', '\r')
# Small batches too (the reader reads them when called, as the line limit and read size), so that
# rows in several batches are common.
BATCH_SIZES = (1, 3, 4096)
# What a name holds: commas and quotes (quoted), a space, a tab, letters of 1 to 4 UTF-8 bytes, and
# a byte order mark, which is text anywhere but at a file's start.
NAME_CHARS = st.sampled_from(['a', 'Z', ',', '"', ' ', '\t', 'é', '中', '😀', '\ufeff'])


class Row(NamedTuple):
    """A row's values: None (and '' for the name) is an empty field, a missing value."""
    id: str
    count: Optional[int]
    score: Optional[float]
    name: str


class Line(NamedTuple):
    """A line the generator wrote: its bytes, its line break ('' for none, at the file's end), and
    what the reader is to make of it: a row's values (good), the start of its problem (bad), or
    neither (the header, a blank line)."""
    text: bytes
    line_break: str
    good: Optional[Row] = None
    problem: Optional[str] = None


def _quoted(text: str, always: bool) -> str:
    return '"' + text.replace('"', '""') + '"' if always or ',' in text or '"' in text else text


def _texts(row: Row) -> List[str]:
    return [row.id, '' if row.count is None else str(row.count),
            '' if row.score is None else repr(row.score), row.name]


def _fields(row: Row, quote: List[bool]) -> List[str]:
    return [_quoted(text, always) for text, always in zip(_texts(row), quote)]


def _join(fields: List[str]) -> bytes:
    return ','.join(fields).encode()


@st.composite
def row_values(draw, number: int) -> Row:
    """A good row's values, its id `r<number>`."""
    return Row(id=f'r{number}',
               count=draw(st.none() | st.integers(-2 ** 63, 2 ** 63 - 1)),
               # Eighths: exact as float32, as the examples hold them.
               score=draw(st.none() | st.integers(-10 ** 6, 10 ** 6).map(lambda k: k / 8)),
               name=draw(st.text(NAME_CHARS, max_size=12)))


def _not_utf8_at_id_end(row: Row, quote: List[bool], sequence: bytes) -> Line:
    """`sequence` (not UTF-8 text before a comma) at the end of the id, an ASCII field."""
    fields = _fields(row, [False, *quote[1:]])
    return Line(_join(fields).replace(b',', sequence + b',', 1), '',
                problem=f'not UTF-8 text at byte {len(row.id) + 1} of the line '
                        f'({sequence[0]:#04x})')


# Sequences that are not UTF-8 whatever follows them: a surrogate, an overlong form, beyond
# U+10FFFF, cut short.
INVALID_UTF8 = (b'\xed\xa0\x80', b'\xc0\xaf', b'\xf4\x90\x80\x80', b'\xe2\x82', b'\xf0\x9f\x98')


@st.composite
def units(draw, number: int) -> List[Line]:
    """The lines of one generated unit: a blank line, a good row or a bad one (a value with a
    line break in it is two bad rows), each line's break not yet drawn."""
    kind = draw(st.sampled_from(['blank', 'good', 'good', 'good', 'as long as allowed', 'latin1',
                                 'invalid utf-8', 'nul', 'unclosed quote', 'line break in value',
                                 'stray quote', 'too many fields', 'too few fields',
                                 'not an integer', 'not a number', 'too long']))
    if kind == 'blank':
        return [Line(b'', '')]
    row = draw(row_values(number))
    quote = draw(st.lists(st.booleans(), min_size=4, max_size=4))
    fields = _fields(row, quote)
    if kind == 'good':
        return [Line(_join(fields), '', good=row)]
    if kind == 'as long as allowed':
        padding = LINE_LIMIT - len(_join(fields))
        row = row._replace(name=row.name + 'y' * padding)
        return [Line(_join(_fields(row, quote)), '', good=row)]
    if kind == 'latin1':
        return [_not_utf8_at_id_end(row, quote, bytes([draw(st.integers(0x80, 0xff))]))]
    if kind == 'invalid utf-8':
        return [_not_utf8_at_id_end(row, quote, draw(st.sampled_from(INVALID_UTF8)))]
    if kind == 'nul':
        fields = _fields(row, [False, *quote[1:]])
        return [Line(_join(fields).replace(b',', b'\0,', 1), '',
                     problem=f'a NUL byte at byte {len(row.id) + 1} of the line: not text')]
    unclosed = 'an unclosed quote: values cannot hold line breaks'
    if kind == 'unclosed quote':
        # The rest of the line is in the quote, unless a quote of a later field closed it.
        column = draw(st.sampled_from([column for column in range(4)
                                       if not any('"' in field for field in fields[column + 1:])]))
        fields[column] = '"' + _texts(row)[column].replace('"', '""')
        return [Line(_join(fields), '', problem=unclosed)]
    if kind == 'line break in value':
        fields[3] = '"' + row.name.replace('"', '""')
        tail = draw(st.text(st.sampled_from('abc é'), min_size=1, max_size=5))
        return [Line(_join(fields), '', problem=unclosed),
                Line(f'{tail}"'.encode(), '', problem='1 fields where the header has 4')]
    if kind == 'stray quote':
        fields[3] = _quoted(row.name, True) + 'x'
        return [Line(_join(fields), '', problem=(
            "not CSV: ',' expected after '\"' (a quote inside a quoted value is written twice)"))]
    if kind == 'too many fields':
        return [Line(_join(fields + ['extra']), '', problem='5 fields where the header has 4')]
    if kind == 'too few fields':
        return [Line(_join(fields[:3]), '', problem='3 fields where the header has 4')]
    if kind == 'not an integer':
        text = draw(st.sampled_from(['3.5', 'three', '1e3', str(2 ** 63), str(-2 ** 63 - 1)]))
        fields[1] = text
        return [Line(_join(fields), '', problem=f"column 'count': '{text}' is ")]
    if kind == 'not a number':
        fields[2] = 'twelve'
        return [Line(_join(fields), '', problem="column 'score': 'twelve' is not a number")]
    assert kind == 'too long'
    fields[3] = 'z' * draw(st.integers(LINE_LIMIT, 4 * LINE_LIMIT))
    return [Line(_join(fields), '', problem=f'longer than {LINE_LIMIT} bytes, the limit of a line')]


@st.composite
def csv_files(draw) -> List[Line]:
    """A file's lines: blank lines perhaps, the header, then units, each with its line break (the
    last perhaps without one)."""
    quote = draw(st.lists(st.booleans(), min_size=4, max_size=4))
    lines = [Line(b'', '')] * draw(st.integers(0, 2))
    lines.append(Line(','.join(map(_quoted, HEADER, quote)).encode(), ''))
    for number in range(draw(st.integers(0, 25))):
        lines.extend(draw(units(number)))
    style = draw(st.sampled_from([*LINE_BREAKS, 'mixed']))
    breaks = []
    for line in lines:
        line_break = draw(st.sampled_from(LINE_BREAKS)) if style == 'mixed' else style
        if breaks and breaks[-1] == '\r' and not line.text and line_break == '\n':
            line_break = '\r\n'  # '\r' then '\n' would be one line break, not a blank line
        breaks.append(line_break)
    if draw(st.booleans()):
        breaks[-1] = ''  # no line break at the end
    return [line._replace(line_break=line_break) for line, line_break in zip(lines, breaks)]


def read(data: bytes, read_size: int, batch_rows: int, short_reads: int = 1 << 30,
         limit: int = LINE_LIMIT):
    """(examples, bad rows) of read_csv on `data`, with `limit` as its line limit."""
    with mock.patch.object(csv_lines, 'MAX_LINE_BYTES', limit), \
            mock.patch.object(csv_lines, 'READ_BYTES', read_size), \
            mock.patch.object(csv_example_gen, 'BATCH_ROWS', batch_rows):
        outputs = list(csv_example_gen.read_csv(ShortReads(data, short_reads), PATH, TYPES))
    assert all(isinstance(output, (list, csv_example_gen.BadRow)) for output in outputs)
    examples = [example for output in outputs if isinstance(output, list) for example in output]
    bad = [output for output in outputs if isinstance(output, csv_example_gen.BadRow)]
    return examples, bad


def _values(example: bytes) -> Row:
    feature = tf.train.Example.FromString(example).features.feature
    assert set(feature) <= set(HEADER)
    count = feature['count'].int64_list.value if 'count' in feature else [None]
    score = feature['score'].float_list.value if 'score' in feature else [None]
    name = feature['name'].bytes_list.value[0].decode() if 'name' in feature else ''
    return Row(feature['id'].bytes_list.value[0].decode(), *count, *score, name)


@PROPERTY_SETTINGS
@given(lines=csv_files(), bom=st.booleans(), read_size=st.sampled_from(READ_SIZES),
       batch_rows=st.sampled_from(BATCH_SIZES), short_reads=st.sampled_from([1, 5, 1 << 30]))
def test_every_row_is_kept_or_set_aside_at_its_line(lines, bom, read_size, batch_rows,
                                                    short_reads):
    data = (BOM if bom else b'') + b''.join(
        line.text + line.line_break.encode() for line in lines)
    examples, bad = read(data, read_size, batch_rows, short_reads)

    numbered = list(enumerate(lines, start=1))
    good = [line.good for _, line in numbered if line.good]
    problems = [(number, line.problem) for number, line in numbered if line.problem]
    assert len(examples) + len(bad) == len(good) + len(problems)  # every data row, once
    assert [_values(example) for example in examples] == good
    assert [row.line for row in bad] == [number for number, _ in problems]
    for row, (number, problem) in zip(bad, problems):
        assert row.file == PATH
        assert row.problem.startswith(problem), (number, row)
        assert '\0' not in row.row


# Pieces of arbitrary files: line breaks, quotes, commas, NULs, a BOM, bytes that are not UTF-8
# text (alone and as the start of a sequence), letters, digits, and a run longer than LINE_LIMIT.
PIECES = st.sampled_from([b'\n', b'\r', b'\r\n', b'"', b'""', b',', b'\0', BOM, b'\xe9', b'\xc3',
                          b'\xc3\xa9', b'\xff', b'a', b'7', b'-1.5', b' ', b'x' * (LINE_LIMIT + 1)])


@PROPERTY_SETTINGS
@given(body=st.lists(PIECES, max_size=60).map(b''.join) | st.binary(max_size=300),
       bom=st.booleans(), read_size=st.sampled_from(READ_SIZES),
       batch_rows=st.sampled_from(BATCH_SIZES))
def test_any_bytes_after_a_header_lose_no_row(body, bom, read_size, batch_rows):
    data = (BOM if bom else b'') + b'id,count,score,name\n' + body
    examples, bad = read(data, read_size, batch_rows)

    # bytes.splitlines splits at the line breaks the reader splits at.
    lines = list(enumerate(data[len(BOM) if bom else 0:].splitlines(), start=1))[1:]
    rows = [number for number, line in lines if line]
    assert len(examples) + len(bad) == len(rows)
    numbers = [row.line for row in bad]
    assert numbers == sorted(set(numbers)) and set(numbers) <= set(rows)
    assert {number for number, line in lines if len(line) > LINE_LIMIT} <= set(numbers)
    for example in examples:
        tf.train.Example.FromString(example)


@pytest.mark.parametrize('data', [b'', b'\n', b'\r\n\r\n', BOM, BOM + b'\r\n\n'])
def test_a_file_without_a_header_has_no_rows(data):
    assert list(csv_example_gen.read_csv(io.BytesIO(data), PATH, TYPES)) == []


@pytest.mark.parametrize('header, problem', [
    (b'\n\nid,name,id', "3: the header repeats ['id']"),
    (b'id,"name', '1: the header: an unclosed quote: values cannot hold line breaks'),
    (b'id,n\xe9me', '1: the header: not UTF-8 text at byte 5 of the line (0xe9)'),
    (b'id,\0', '1: the header: a NUL byte at byte 4 of the line: not text'),
    (b'id,' + b'n' * csv_lines.MAX_LINE_BYTES,
     f'1: the header: longer than {csv_lines.MAX_LINE_BYTES} bytes, the limit of a line'),
])
def test_a_header_that_cannot_be_read_fails_naming_file_and_line(header, problem):
    with pytest.raises(csv_example_gen.CsvRowsError) as error:
        list(csv_example_gen.read_csv(io.BytesIO(header + b'\nr1,1,1.5,a\n'), PATH, TYPES))
    assert str(error.value) == f'{PATH}:{problem}; no row of the file can be read'


def test_the_limits_in_earnest():
    """At the real limits: a value over csv's default limit (131,072 characters) is kept; a line
    over MAX_LINE_BYTES, and an unclosed quote followed by 128 KiB, are a bad row each."""
    limit = csv_lines.MAX_LINE_BYTES
    data = (b'id,count,score,name\n'
            + b'r1,1,1.5,"' + b'a' * 200_000 + b'"\n'            # 2: kept
            + b'r2,2,2.5,' + b'z' * limit + b'\r\n'                # 3: too long
            + b'r3,3,3.5,"open\n' + (b'r,4,4.5,b\n' * 13_108)      # 4: unclosed; 5-13112 kept
            + b'r5,5,5.5,' + b'y' * (limit - 9))                   # 13113: as long as allowed
    examples, bad = read(data, csv_lines.READ_BYTES, csv_example_gen.BATCH_ROWS,
                         limit=limit)
    assert [(row.line, row.problem) for row in bad] == [
        (3, f'longer than {limit} bytes, the limit of a line'),
        (4, 'an unclosed quote: values cannot hold line breaks')]
    assert len(examples) == 1 + 13_108 + 1
    assert _values(examples[0]).name == 'a' * 200_000
    assert len(_values(examples[-1]).name) == limit - 9
