"""A CSV file as lines of fields: the reading rules that CsvExampleGen and `pipeline.predict` share.

Values cannot hold line breaks (TFT writes vocabularies as files of lines, so a category cannot
hold one), so a row is a physical line: a file is read as bytes and split at '\n', '\r\n' and a
lone '\r'; a UTF-8 byte order mark at its start is dropped. Each line is decoded and parsed on its
own, in CSV's default dialect (comma-separated, a value that holds a comma or a quote quoted with
'"', a quote inside it doubled), so that a bad line is one bad line and the next is read as if it
were not there. A line is refused (ValueError saying why) when it is not UTF-8 text, holds a NUL
byte, is longer than MAX_LINE_BYTES (the rest of it is read past, never held in memory), leaves a
quote open (its value would hold a line break) or is otherwise not CSV.

Standard library only: `pipeline.predict` reads with it without loading Beam or TFX.
"""

import codecs
import csv
from typing import BinaryIO, Iterator, List

# The longest line (a row) read, in bytes without its line break: a longer one is a bad row, and
# a file without line breaks cannot take all memory.
MAX_LINE_BYTES = 1 << 20
# csv's limit on a value is process-wide (131,072 characters by default). A value read is at most
# a line; a row in CsvExampleGen's BadRows/ at most 4 characters per byte of its line (bytes that
# are not UTF-8 text are written as \xNN).
csv.field_size_limit(max(csv.field_size_limit(), 4 * MAX_LINE_BYTES))
# What is read at a time; a line's start is kept from one read to the next.
READ_BYTES = 1 << 20
# csv's message (strict mode) for a line that ends inside a quoted value.
_CSV_END_IN_QUOTES = 'unexpected end of data'


def _line_break(data: bytes) -> int:
    """Where the first line break of `data` is, or -1."""
    found = [at for at in (data.find(b'\n'), data.find(b'\r')) if at >= 0]
    return min(found, default=-1)


def physical_lines(stream: BinaryIO) -> Iterator[List[bytes]]:
    """The lines of a binary stream, a list at a time, each without its line break ('\\n', '\\r\\n'
    or a lone '\\r', as bytes.splitlines splits), a UTF-8 byte order mark at its start dropped.
    Of a line longer than MAX_LINE_BYTES, only a start longer than that comes: the rest of it is
    read past, never held in memory whole."""
    carry = b''
    while len(carry) < len(codecs.BOM_UTF8):  # reads may be short
        more = stream.read(len(codecs.BOM_UTF8) - len(carry))
        if not more:
            break
        carry += more
    if carry == codecs.BOM_UTF8:
        carry = b''
    # `carry`: the start of a line whose end is not read yet; `skipping`: within an over-long line,
    # past what came of it (`carry` then holds at most a '\r' that a '\n' may follow).
    skipping = False
    while True:
        block = stream.read(READ_BYTES)
        if not block:
            if carry and not skipping:
                yield carry.splitlines()
            return
        data = carry + block
        if skipping:
            end = _line_break(data)
            if end < 0 or end == len(data) - 1 and data.endswith(b'\r'):
                carry = data[end:] if end >= 0 else b''
                continue
            skipping = False
            data = data[end + (2 if data.startswith(b'\r\n', end) else 1):]
        # The last line break known whole: a '\r' at the very end may be half of a '\r\n'.
        last = max(data.rfind(b'\n'), data.rfind(b'\r', 0, len(data) - 1))
        if last >= 0:
            yield data[:last + 1].splitlines()
        carry = data[last + 1:]
        broken = carry.endswith(b'\r')  # the line's break, perhaps half of a '\r\n'
        if len(carry) - broken > MAX_LINE_BYTES:
            yield [carry[:len(carry) - broken]]
            skipping = True
            carry = b'\r' if broken else b''


def fields(line: bytes) -> List[str]:
    """The fields of one line, or ValueError saying why it has none."""
    if len(line) > MAX_LINE_BYTES:
        raise ValueError(f'longer than {MAX_LINE_BYTES} bytes, the limit of a line')
    try:
        text = line.decode()
    except UnicodeDecodeError as error:
        raise ValueError(f'not UTF-8 text at byte {error.start + 1} of the line '
                         f'({line[error.start]:#04x})') from None
    # Looked for in the text rather than in the bytes: `in` is many times faster on str.
    if '"' not in text and '\0' not in text:
        return text.split(',')  # as csv's default dialect splits it, and faster
    if '\0' in text:
        raise ValueError(f'a NUL byte at byte {line.index(0) + 1} of the line: not text')
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as error:
        if str(error) == _CSV_END_IN_QUOTES:
            raise ValueError('an unclosed quote: values cannot hold line breaks') from None
        raise ValueError(f'not CSV: {error} (a quote inside a quoted value is written twice)'
                         ) from None
