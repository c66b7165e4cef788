"""tf.Examples of CSV rows, serialized by hand: protobuf's bytes without a message per row.

CsvExampleGen (components/csv_example_gen.py) turns every row of its input into a serialized
tf.Example. Building a protobuf message per row and serializing it, with Beam's cost per element,
was most of its time; `RowEncoder` writes the same bytes directly, a batch of rows at a time, with
each column's encoded entry cached per distinct text, so that a row costs a lookup per field and
a join.

The bytes are protobuf's deterministic serialization of the tf.Example holding the value of each
non-empty field (the values, for a column of a list feature, whose cells hold several with a
separator between them) (tensorflow/core/example/{example,feature}.proto), every field of every message
length-delimited (a tag byte, the payload's length as a varint, the payload):
- Example: field 1, `features` (a Features), absent when the row has no value: then the example
  is b'', as protobuf writes an empty message;
- Features: field 1, `feature`, a map from name to Feature: one entry per feature, in name
  order as the deterministic serialization sorts map keys (by their UTF-8 bytes, which is the
  order of Python's str comparison), each entry a message of its key (field 1, the name in
  UTF-8) and its value (field 2, a Feature);
- Feature: one of bytes_list (field 1), float_list (field 2) or int64_list (field 3), by the
  column's type: INT, FLOAT, or any other (BYTES);
- each list: its field 1, `value`: numbers packed into one such field (as proto3 writes repeated
  numbers), an int64 as a varint (a negative one in two's complement, 10 bytes), a float as 4
  little-endian bytes; bytes one field per value, as they are (the text in UTF-8).
An empty field is a missing feature. A value its type refuses (not an integer, an integer
outside the 64-bit range, not a number) is a problem of its row, which gets no example.

Deterministic, because CsvExampleGen's train/eval split hashes these bytes: the same row must
land in the same split on any run, runner or worker.
"""

import math
import struct
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

# The tags (field number and wire type 2, length-delimited) of the fields written, by message
# (tensorflow/core/example/{example,feature}.proto); the module docstring says how they nest.
_EXAMPLE_FEATURES = _FEATURE_MAP = _ENTRY_KEY = _LIST_VALUES = _BYTES_LIST = b'\x0a'
_ENTRY_VALUE = _FLOAT_LIST = b'\x12'
_INT64_LIST = b'\x1a'
_INT64_RANGE = range(-2 ** 63, 2 ** 63)
_FLOAT32_MAX = struct.unpack('<f', b'\xff\xff\x7f\x7f')[0]
# Half a float32 step (2 ** 104 at the top of its range) above the largest float32.
_FLOAT32_MAX_HALF_STEP_ABOVE = _FLOAT32_MAX + 2.0 ** 103
# A column's cache of encoded values is emptied when it grows past this many (distinct) values.
_CACHED_VALUES = 1 << 16


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7f:
        out.append(number & 0x7f | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _int64_value(text: str) -> bytes:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f'{text!r} is not an integer') from None
    if value not in _INT64_RANGE:
        raise ValueError(f'{text!r} is out of the 64-bit integer range')
    return _varint(value & 0xffffffffffffffff)


def _float_value(text: str) -> bytes:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f'{text!r} is not a number') from None
    # As protobuf (3.20, the pinned one) stores a double into a float field: the nearest float32,
    # the largest up to half a step above it (where struct.pack rounds to it, or refuses), and
    # infinite beyond.
    if _FLOAT32_MAX < abs(value) < math.inf:
        value = math.copysign(
            _FLOAT32_MAX if abs(value) <= _FLOAT32_MAX_HALF_STEP_ABOVE else math.inf, value)
    return struct.pack('<f', value)


# {type: (its list's tag, one value's bytes)}: numbers are packed, all values in one field.
_NUMBERS = {'INT': (_INT64_LIST, _int64_value), 'FLOAT': (_FLOAT_LIST, _float_value)}


def _list(column_type: str, texts: List[str]) -> bytes:
    """The Feature of `texts`, values of a column of `column_type` (INT, FLOAT, else BYTES)."""
    if column_type in _NUMBERS:
        tag, value = _NUMBERS[column_type]
        return _field(tag, _field(_LIST_VALUES, b''.join(map(value, texts))))
    return _field(_BYTES_LIST, b''.join(_field(_LIST_VALUES, text.encode()) for text in texts))


def _values(column_type: str, separator: Optional[str]) -> Callable[[str], bytes]:
    """A cell's text -> its Feature: one value, or with a `separator` the values between them
    (an empty value between two separators is one empty value)."""
    if separator is None:
        return lambda text: _list(column_type, [text])
    return lambda text: _list(column_type, text.split(separator))


def _example(features: bytes) -> bytes:
    # A row without any value is an empty message, as protobuf writes it.
    return _field(_EXAMPLE_FEATURES, features) if features else b''


# _example's head (tag and length) for the usual lengths, looked up rather than computed per row.
_EXAMPLE_HEADS = [b''] + [_EXAMPLE_FEATURES + _varint(length) for length in range(1, 1 << 14)]


class RowEncoder:
    """Serializes rows of one file as tf.Examples, a batch at a time.

    It writes the bytes that protobuf's deterministic serialization writes (features in name order,
    an empty field being a missing feature) without building a message per row: each column's
    encoded map entry is cached per distinct text, so that a row costs a lookup per field and a
    join. Deterministic, because the train/eval split hashes these bytes: the same row must land
    in the same split on any run, runner or worker."""

    def __init__(self, header: List[str], types: Dict[str, str],
                 separators: Mapping[str, str] = {}):
        self._header = header
        self._lists = [_values(types.get(name, 'BYTES'), separators.get(name)) for name in header]
        self._keys = [_field(_ENTRY_KEY, name.encode()) for name in header]
        self._caches = [{'': b''} for _ in header]
        self._order = sorted(range(len(header)), key=lambda column: header[column])

    def _entry(self, column: int, text: str) -> bytes:
        """The map entry of `text` in `column`, or ValueError saying what is wrong with it."""
        try:
            value = self._lists[column](text)
        except ValueError as problem:
            raise ValueError(f'column {self._header[column]!r}: {problem}') from None
        return _field(_FEATURE_MAP, self._keys[column] + _field(_ENTRY_VALUE, value))

    def encode(self, rows: List[List[str]]) -> Tuple[List[bytes], Dict[int, str]]:
        """(The serialized examples of the good rows, in order; {index in `rows`: problem} of
        the bad ones)."""
        width = len(self._header)
        good = [index for index, fields in enumerate(rows) if len(fields) == width]
        problems = {index: f'{len(rows[index])} fields where the header has {width}'
                    for index in set(range(len(rows))) - set(good)} if len(good) < len(rows) else {}
        encoded: List[Any] = [None] * width  # each column's entries, in row order
        for column, texts in enumerate(zip(*(rows[index] for index in good))):
            cache = self._caches[column]
            if len(cache) > _CACHED_VALUES:
                cache.clear()
                cache[''] = b''
            entries = list(map(cache.get, texts))
            unseen = [position for position, entry in enumerate(entries)
                      if entry is None] if None in entries else ()
            for position in unseen:
                try:
                    entries[position] = cache[texts[position]] = self._entry(
                        column, texts[position])
                except ValueError as problem:
                    entries[position] = b''
                    problems.setdefault(good[position], str(problem))
            encoded[column] = entries
        if not good:
            return [], problems
        bodies = list(map(b''.join, zip(*(encoded[column] for column in self._order))))
        if max(map(len, bodies)) < len(_EXAMPLE_HEADS):
            examples = list(map(bytes.__add__, map(_EXAMPLE_HEADS.__getitem__, map(len, bodies)),
                                bodies))
        else:
            examples = [_example(body) for body in bodies]
        if problems:
            examples = [example for index, example in zip(good, examples)
                        if index not in problems]
        return examples, problems
