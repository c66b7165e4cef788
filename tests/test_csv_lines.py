"""components/csv_lines.py: a file splits into the lines bytes.splitlines gives, a UTF-8 byte order
mark at its start dropped, a line over the limit cut to a start over it, whatever the reads give.
What the readers make of the lines: test_csv_example_gen_properties.py, test_predict.py."""

import codecs
import itertools
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from components import csv_lines

from helpers import LINE_LIMIT, PROPERTY_SETTINGS, READ_SIZES, ShortReads

BOM = codecs.BOM_UTF8


def _assert_split_as_splitlines_splits(data: bytes, read_size: int, short_reads: int):
    """A line as it is, or of one over the limit, a start over the limit (the rest read past)."""
    with mock.patch.object(csv_lines, 'MAX_LINE_BYTES', LINE_LIMIT), \
            mock.patch.object(csv_lines, 'READ_BYTES', read_size):
        lines = list(itertools.chain.from_iterable(
            csv_lines.physical_lines(ShortReads(data, short_reads))))
    expected = (data[len(BOM):] if data.startswith(BOM) else data).splitlines()
    assert len(lines) == len(expected)
    for line, whole in zip(lines, expected):
        if len(whole) <= LINE_LIMIT:
            assert line == whole
        else:
            assert len(line) > LINE_LIMIT and whole.startswith(line)


@PROPERTY_SETTINGS
@given(data=st.lists(st.sampled_from([b'\n', b'\r', b'\r\n', b'a', b'bc', BOM, b'\xe9',
                                      b'y' * LINE_LIMIT, b'y' * (LINE_LIMIT + 1)]), max_size=40
                     ).map(b''.join),
       read_size=st.sampled_from(READ_SIZES), short_reads=st.sampled_from([1, 4, 1 << 30]))
def test_a_file_splits_into_the_lines_bytes_splitlines_gives(data, read_size, short_reads):
    _assert_split_as_splitlines_splits(data, read_size, short_reads)


def test_a_read_may_end_anywhere_near_a_line_break():
    """Every read size, so that reads end on each byte of lines at and over the limit and of
    their breaks ('\\r' then '\\n' in the next read is one line break)."""
    data = (BOM + b'y' * LINE_LIMIT + b'\r\n' + b'y' * (LINE_LIMIT + 1) + b'\r\n' + b'a\r'
            + b'y' * (LINE_LIMIT + 3) + b'\r' + b'b\r\n\r' + b'y' * (LINE_LIMIT + 1) + b'\r')
    for read_size in range(1, len(data) + 1):
        _assert_split_as_splitlines_splits(data, read_size, 1 << 30)
