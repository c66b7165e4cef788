"""components/example_encoder.py: the bytes it writes parse into tf.Examples holding exactly the
values given, and are protobuf's own deterministic serialization of those examples, for every
type, empty and long values, any text, the ends of the int64 range and the floats float32 cannot
hold; the values a type refuses are their row's problem."""

import math
import struct

import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

from components.example_encoder import RowEncoder

from helpers import PROPERTY_SETTINGS

KINDS = {'INT': 'int64_list', 'FLOAT': 'float_list', 'BYTES': 'bytes_list'}
FLOAT32_MAX = struct.unpack('<f', b'\xff\xff\x7f\x7f')[0]


def _float32(text):
    return struct.unpack('<f', struct.pack('<f', float(text)))[0]


def _values(example: bytes):
    """{feature: (its list's kind, its values)} of a serialized tf.Example."""
    features = tf.train.Example.FromString(example).features.feature
    return {name: (feature.WhichOneof('kind'),
                   list(getattr(feature, feature.WhichOneof('kind')).value))
            for name, feature in features.items()}


def _protobufs(header, types, fields) -> bytes:
    """Protobuf's deterministic serialization of the tf.Example of one row."""
    example = tf.train.Example()
    for name, text in zip(header, fields):
        if text:
            feature = example.features.feature[name]
            kind = types.get(name)
            if kind == 'INT':
                feature.int64_list.value.append(int(text))
            elif kind == 'FLOAT':
                feature.float_list.value.append(float(text))
            else:
                feature.bytes_list.value.append(text.encode())
    return example.SerializeToString(deterministic=True)


def _encoded(header, types, rows):
    examples, problems = RowEncoder(header, types).encode(rows)
    assert not problems
    return examples


HEADER = ['count', 'score', 'name', 'other']
TYPES = {'count': 'INT', 'score': 'FLOAT', 'name': 'BYTES'}  # `other` is not typed: bytes


@pytest.mark.parametrize('fields', [
    ['3', '1.5', 'abc', 'x'],
    ['-7', '-0.25', 'é中😀', '\x00'],
    [str(2 ** 63 - 1), '1e-3', 'a,b "c"', ' spaced '],
    [str(-2 ** 63), '0', 'n' * 300, 'y' * 20000],
    ['0', '-0.0', '+', '0'],
])
def test_each_value_parses_as_given_and_as_protobuf_writes_it(fields):
    example, = _encoded(HEADER, TYPES, [fields])
    assert _values(example) == {
        'count': ('int64_list', [int(fields[0])]),
        'score': ('float_list', [_float32(fields[1])]),
        'name': ('bytes_list', [fields[2].encode()]),
        'other': ('bytes_list', [fields[3].encode()])}
    assert example == _protobufs(HEADER, TYPES, fields)


def test_an_empty_field_is_a_missing_feature_and_a_row_of_them_an_empty_example():
    examples = _encoded(HEADER, TYPES, [['', '2', '', ''], ['', '', '', '']])
    assert _values(examples[0]) == {'score': ('float_list', [2.0])}
    assert examples[1] == b'' == tf.train.Example().SerializeToString()
    assert _values(examples[1]) == {}
    assert examples == [_protobufs(HEADER, TYPES, ['', '2', '', '']), b'']


@pytest.mark.parametrize('text, value', [
    ('nan', math.nan), ('inf', math.inf), ('-inf', -math.inf), ('1e39', math.inf),
    ('-1e39', -math.inf), ('3.40282357e38', math.inf), ('1e-50', 0.0), ('0.1', _float32('0.1')),
    # The largest float32, and doubles above it up to half a float32 step (2 ** 103) above,
    # which protobuf stores as the largest float32; beyond, infinite.
    ('3.4028234e38', FLOAT32_MAX), ('3.4028235e+38', FLOAT32_MAX), ('-3.4028235e38', -FLOAT32_MAX),
    (repr(FLOAT32_MAX + 2.0 ** 103), FLOAT32_MAX),
    (repr(math.nextafter(FLOAT32_MAX + 2.0 ** 103, math.inf)), math.inf)])
def test_floats_as_float32_holds_them(text, value):
    example, = _encoded(['x'], {'x': 'FLOAT'}, [[text]])
    (kind, (parsed,)), = _values(example).values()
    assert kind == 'float_list'
    assert parsed == value or (math.isnan(parsed) and math.isnan(value))
    assert example == _protobufs(['x'], {'x': 'FLOAT'}, [text])


def test_features_are_in_the_order_of_their_names_utf8_bytes():
    """Protobuf's deterministic serialization sorts map keys by their bytes: for UTF-8, the
    order of code points, which is Python's order of str, also beyond the 16-bit range."""
    header = ['😀', '\uff01', 'é', 'a', 'Z', 'a b']
    example, = _encoded(header, {}, [['1', '2', '3', '4', '5', '6']])
    assert example == _protobufs(header, {}, ['1', '2', '3', '4', '5', '6'])


def test_values_a_type_refuses_are_their_rows_problem_and_the_rest_are_kept():
    rows = [['1', '1.0'], ['x', '1.0'], ['2', 'y'], [str(2 ** 63), '0'], [str(-2 ** 63 - 1), '0'],
            ['3'], ['4', '4.0']]
    examples, problems = RowEncoder(['count', 'score'], {'count': 'INT', 'score': 'FLOAT'}
                                    ).encode(rows)
    assert [_values(example)['count'][1] for example in examples] == [[1], [4]]
    assert problems == {
        1: "column 'count': 'x' is not an integer",
        2: "column 'score': 'y' is not a number",
        3: f"column 'count': '{2 ** 63}' is out of the 64-bit integer range",
        4: f"column 'count': '{-2 ** 63 - 1}' is out of the 64-bit integer range",
        5: '1 fields where the header has 2'}


def test_an_encoder_gives_the_same_bytes_across_batches_and_many_distinct_values():
    """Each column caches its encoded values, and empties the cache past a bound: neither may
    change the bytes."""
    header, types = ['id', 'x'], {'id': 'INT', 'x': 'FLOAT'}
    rows = [[str(number), str(number / 7)] for number in range(70000)]
    encoder = RowEncoder(header, types)
    examples = [example for start in range(0, len(rows), 4096)
                for example in encoder.encode(rows[start:start + 4096])[0]]
    examples += encoder.encode(rows[:10])[0]
    assert examples == [_protobufs(header, types, fields) for fields in rows + rows[:10]]


_NAMES = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=5, unique=True)
_VALUES = {
    'INT': st.one_of(st.just(''), st.integers(-2 ** 63, 2 ** 63 - 1).map(str)),
    'FLOAT': st.one_of(st.just(''), st.floats(width=32).map(repr),
                       st.floats(allow_nan=False).map(repr),
                       # around the largest float32, where protobuf's conversion has its edges
                       st.floats(FLOAT32_MAX * (1 - 1e-6), FLOAT32_MAX * (1 + 1e-6)).map(repr)),
    'BYTES': st.text(max_size=200),
}


@st.composite
def _tables(draw):
    header = draw(_NAMES)
    kinds = [draw(st.sampled_from(sorted(KINDS))) for _ in header]
    types = {name: kind for name, kind in zip(header, kinds) if kind != 'BYTES' or draw(
        st.booleans())}  # a bytes column is typed or left out of `types`
    rows = draw(st.lists(st.tuples(*(_VALUES[kind] for kind in kinds)).map(list), max_size=8))
    return header, types, rows


@PROPERTY_SETTINGS
@given(_tables())
def test_any_rows_serialize_as_protobuf_does(table):
    header, types, rows = table
    assert _encoded(header, types, rows) == [_protobufs(header, types, fields)
                                             for fields in rows]
