"""Our CsvExampleGen executor, run for real on small files: typed columns, every bad row named."""

import glob
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import proto_utils

from components import csv_example_gen
from pipeline import pipeline
from pipeline.config import PROJECT_DIR, PipelineConfig
from pipeline.datasets import ecommerce

from helpers import BAD, run_pipeline

SCHEMA = PipelineConfig().schema
GOOD = ('u1,i1,c1,s1,city1,ios,3,F,25-34,12.5,4,1,4.2,10,1,0\n'
        'u2,i2,c2,s2,city2,pc,7,M,18-24,,2,0,3.9,3,0,0\n')


with open(os.path.join(os.path.dirname(SCHEMA), '..', 'data', 'ecommerce',
                       'ecommerce.csv')) as bundled:
    HEADER = bundled.readline()


def write_csv(directory, body, name='part.csv'):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write(HEADER + body)
    return path


def run_executor(tmp_path, body, bad_rows, config=None):
    """Our executor on one CSV (`body`) under tmp_path/data, as ExampleGen runs it; `config`: the
    pipeline's config, whose split settings it takes (default: the file as one train split)."""
    data = tmp_path / 'data'
    if body is not None:
        write_csv(str(data), body)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / 'CsvExampleGen' / 'examples' / '1')
    if config is None:
        split_configs, split_off_train = {'input_config': example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name='train', pattern='*.csv')])}, {}
    else:
        split_configs, split_off_train = pipeline._split_configs(config)
    exec_properties = {
        keys.INPUT_BASE_KEY: str(data),
        keys.INPUT_CONFIG_KEY: proto_utils.proto_to_json(split_configs['input_config']),
        keys.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(
            split_configs.get('output_config', example_gen_pb2.Output())),
        keys.CUSTOM_CONFIG_KEY: proto_utils.proto_to_json(
            csv_example_gen.custom_config(SCHEMA, bad_rows, split_off_train)),
        keys.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        keys.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }
    csv_example_gen.Executor().Do({}, {keys.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


def read_examples(examples, split='train'):
    files = glob.glob(os.path.join(examples.uri, f'Split-{split}', '*'))
    records = tf.data.TFRecordDataset(files, compression_type='GZIP')
    return [tf.train.Example.FromString(record.numpy()) for record in records]


def test_columns_are_typed_as_the_schema_says_and_empty_is_missing(tmp_path):
    examples = run_executor(tmp_path, GOOD, 'fail')
    parsed = sorted(read_examples(examples),
                    key=lambda e: e.features.feature['user_id'].bytes_list.value[0])
    assert len(parsed) == 2
    first, second = (example.features.feature for example in parsed)
    assert first['hour'].int64_list.value == [3]
    assert first['price'].float_list.value == [12.5]
    assert first['device'].bytes_list.value == [b'ios']
    assert first['click'].int64_list.value == [1]
    assert 'price' not in second  # empty field: a missing value, filled later by Transform
    assert examples.get_int_custom_property(csv_example_gen.BAD_ROWS_PROPERTY) == 0


def test_fail_mode_names_file_line_and_problem_of_every_bad_row(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_example_gen, 'BATCH_ROWS', 3)  # bad rows in several batches
    with pytest.raises(csv_example_gen.CsvRowsError) as error:
        run_executor(tmp_path, GOOD + BAD, 'fail')
    message = str(error.value)
    path = os.path.join(str(tmp_path), 'data', 'part.csv')
    assert message.startswith('5 bad CSV row(s):')
    assert f'{path}:4: 17 fields where the header has 16' in message
    assert f'{path}:5: 10 fields where the header has 16' in message
    assert f"{path}:6: column 'price': 'twelve' is not a number" in message
    assert f'{path}:7: an unclosed quote: values cannot hold line breaks' in message
    assert f"{path}:8: column 'hour': '3.5' is not an integer" in message
    assert 'bad_rows: skip' in message
    # The complete list survives the failed execution, whose outputs TFX removes.
    listed = csv_example_gen.read_bad_rows(
        csv_example_gen.bad_rows_dir(str(tmp_path / 'CsvExampleGen' / 'examples' / '1')))
    assert [row['line'] for row in listed] == ['4', '5', '6', '7', '8']


def test_skip_mode_sets_bad_rows_aside_and_counts_them(tmp_path):
    examples = run_executor(tmp_path, GOOD + BAD, 'skip')
    assert len(read_examples(examples)) == 2
    assert examples.get_int_custom_property(csv_example_gen.BAD_ROWS_PROPERTY) == 5
    directory = examples.get_string_custom_property(csv_example_gen.BAD_ROWS_DIR_PROPERTY)
    listed = csv_example_gen.read_bad_rows(directory)
    assert len(listed) == 5
    # Nothing is lost: each bad row is kept as it was read.
    assert listed[3]['row'] == BAD.splitlines()[3]


def _numbered_rows(rows, seed):
    """`rows` generated rows, user_id 'row-N' for the row on line N (the header is line 1)."""
    frame = ecommerce.generate(rows, seed)[0]
    return frame.assign(user_id=[f'row-{line}' for line in range(2, rows + 2)])


def test_a_byte_that_is_not_utf8_sets_aside_its_row_alone(tmp_path):
    """One Latin-1 byte on line 501 of 1,001: that row is set aside, at its line, and the other
    999 are kept (the file's rest was lost when the file was decoded as one stream)."""
    frame = _numbered_rows(1000, seed=4)
    lines = frame.to_csv(index=False).encode().splitlines(keepends=True)
    lines[500] = lines[500].replace(b',city', b',Montr\xe9al-city', 1)
    data = tmp_path / 'data'
    os.makedirs(data)
    (data / 'part.csv').write_bytes(b''.join(lines))

    examples = run_executor(tmp_path, None, 'skip')
    assert _user_ids(examples, 'train') == sorted(
        user_id for user_id in frame['user_id'] if user_id != 'row-501')
    assert examples.get_int_custom_property(csv_example_gen.BAD_ROWS_PROPERTY) == 1
    listed = csv_example_gen.read_bad_rows(
        examples.get_string_custom_property(csv_example_gen.BAD_ROWS_DIR_PROPERTY))
    assert [(row['file'], row['line']) for row in listed] == [(str(data / 'part.csv'), '501')]
    assert listed[0]['problem'].startswith('not UTF-8 text at byte ')
    assert listed[0]['problem'].endswith(' of the line (0xe9)')
    assert listed[0]['row'].startswith('row-501,') and 'Montr\\xe9al-city' in listed[0]['row']


def test_odd_files_lose_no_row(tmp_path):
    """A byte order mark, Windows and old Mac line breaks, blank lines, a quoted line break (two
    lines, two bad rows: values cannot hold one), no final line break; an empty file and one of
    blank lines: every data row is kept or set aside at its own line."""
    good = GOOD.splitlines()
    body = ('\r\n'.join([good[0], '', good[1]]) + '\r'                     # lines 2-4
            + 'u6,i6,"c6\nc7",s6,city6,ios,3,F,25-34,12.5,4,1,4.2,10,1,0\n'  # lines 5-6
            + good[0].replace('u1,', 'u8,') + '\n\n'                         # lines 7-8
            + good[1].replace('u2,', 'u9,'))                                 # line 9, no break
    data = tmp_path / 'data'
    os.makedirs(data)
    path = str(data / 'odd.csv')
    with open(path, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + (HEADER + body).encode())
    (data / 'empty.csv').write_bytes(b'')
    (data / 'blank.csv').write_bytes(b'\n\r\n\r')

    examples = run_executor(tmp_path, None, 'skip')
    assert _user_ids(examples, 'train') == ['u1', 'u2', 'u8', 'u9']
    listed = csv_example_gen.read_bad_rows(
        examples.get_string_custom_property(csv_example_gen.BAD_ROWS_DIR_PROPERTY))
    assert [(row['file'], row['line'], row['problem']) for row in listed] == [
        (path, '5', 'an unclosed quote: values cannot hold line breaks'),
        (path, '6', '14 fields where the header has 16')]


def test_a_header_that_repeats_a_name_fails_the_run_under_skip_too(tmp_path):
    """No row of such a file can be read: setting it aside as one bad row lost all of them."""
    data = tmp_path / 'data'
    os.makedirs(data)
    path = data / 'part.csv'
    path.write_text(HEADER.replace('item_id', 'user_id') + GOOD)
    with pytest.raises(csv_example_gen.CsvRowsError) as error:
        run_executor(tmp_path, None, 'skip')
    assert f"{path}:1: the header repeats ['user_id']; no row of the file can be read" in str(
        error.value)


def test_a_file_that_two_splits_match_is_refused(tmp_path):
    """Its eval rows would be training rows too."""
    data = tmp_path / 'data'
    for week in ('week1', 'week9'):
        write_csv(str(data), GOOD, name=f'{week}.csv')
    config = PipelineConfig(data=str(data), csv_pattern='*.csv', eval_csv_pattern='week9.csv')
    with pytest.raises(csv_example_gen.CsvRowsError) as error:
        run_executor(tmp_path, None, 'fail', config)
    assert str(error.value) == (
        f"{data / 'week9.csv'} is matched by the patterns of two splits, train ('*.csv') and "
        "eval ('week9.csv'): its rows would be in both; give each split patterns that no other "
        "split's match")


def _user_ids(examples, split):
    return sorted(e.features.feature['user_id'].bytes_list.value[0].decode()
                  for e in read_examples(examples, split))


@pytest.mark.parametrize('own_files', [(), ('eval',), ('validation', 'eval')])
def test_every_row_lands_in_one_of_train_validation_and_eval(tmp_path, own_files):
    """Split by hash 8:1:1; or eval (and validation) from files of their own, the splits without
    files drawn from the train files by their shares."""
    rows = {split: ecommerce.generate(rows, seed)[0].assign(user_id=lambda f, s=split: [
        f'{s}-{i}' for i in range(len(f))])
        for split, rows, seed in (('train', 1000, 1), ('validation', 50, 2), ('eval', 60, 3))}
    data = tmp_path / 'data'
    for split in ('train', *own_files):
        os.makedirs(data / split)
        rows[split].to_csv(data / split / ecommerce.CSV_NAME, index=False)
    config = PipelineConfig(data=str(data), csv_pattern='train/*.csv', **{
        f'{split}_csv_pattern': f'{split}/*.csv' for split in own_files})
    examples = run_executor(tmp_path, None, 'fail', config)

    assert examples.split_names == '["train", "validation", "eval"]'
    ids = {split: _user_ids(examples, split) for split in csv_example_gen.SPLITS}
    for split in own_files:
        assert ids[split] == sorted(rows[split]['user_id'])
    drawn = [split for split in csv_example_gen.SPLITS if split not in own_files]
    assert sorted(sum((ids[split] for split in drawn), [])) == sorted(rows['train']['user_id'])
    shares = dict(zip(csv_example_gen.SPLITS, config.split_shares))
    for split in drawn:  # 1000 rows by 8:1:1 or 8:1: about 800, 100 (and 100) each
        expected = 1000 * shares[split] / sum(shares[s] for s in drawn)
        assert abs(len(ids[split]) - expected) < 4 * expected ** 0.5, (split, len(ids[split]))


@pytest.mark.e2e
def test_a_bad_row_stops_the_run_before_statistics_with_one_message(tmp_path):
    data = tmp_path / 'data'
    path = write_csv(str(data), GOOD * 20 + BAD)
    run = run_pipeline(tmp_path / 'out', '--data', str(data))
    assert run.returncode == 1
    assert 'error: CsvExampleGen failed: CsvRowsError: 5 bad CSV row(s):' in run.stderr
    assert f'{path}:42: 17 fields where the header has 16' in run.stderr
    assert 'Traceback' not in run.stderr
    assert 'StatisticsGen' not in run.stdout


@pytest.mark.slow
def test_a_row_serializes_to_the_same_bytes_in_every_process(tmp_path):
    """The train/eval split hashes these bytes: another process (another run, a Beam worker)
    must not put the same row into another split."""
    script = ('import hashlib, sys\n'
              'from components import csv_example_gen\n'
              'header = sys.argv[1].split(",")\n'
              'encoder = csv_example_gen._RowEncoder(header, {h: "BYTES" for h in header})\n'
              'examples, _ = encoder.encode([row.split(",") for row in sys.argv[2:]])\n'
              'print(hashlib.sha256(b"".join(examples)).hexdigest())')
    header = 'country,app_version,song,duration_sec,age,liked,shared,listen_minutes'
    rows = ('jp,4,song-1,200,30,1,0,3.5', 'de,5,song-2,,31,0,0,1.5')  # the second misses a value
    # Side by side: each process is its own.
    processes = [subprocess.Popen(
        [sys.executable, '-c', script, header, *rows], stdout=subprocess.PIPE, text=True,
        cwd=PROJECT_DIR, env={**os.environ, 'PYTHONHASHSEED': str(seed)}) for seed in (1, 2, 3)]
    digests = {process.communicate(timeout=120)[0] for process in processes}
    assert all(process.returncode == 0 for process in processes)
    assert len(digests) == 1 and len(next(iter(digests)).strip()) == 64


def test_rows_serialize_to_the_bytes_protobuf_writes():
    """The encoder writes the wire format itself: its bytes must be protobuf's deterministic
    serialization of the same example, for any value (long ones need longer length prefixes)."""
    header = ['zeta', 'count', 'score', 'élan', 'name']
    types = {'count': 'INT', 'score': 'FLOAT', 'zeta': 'BYTES'}
    rows = [['a', '3', '1.5', 'é', 'n'],
            ['x' * 300, '-7', '', '', ''],
            ['', str(2 ** 63 - 1), '1e39', 'q', 'm'],
            ['y', str(-2 ** 63), '-3.40282357e38', 'r', ''],
            ['z', '0', 'nan', 's', 'x' * 20000],
            ['', '', '', '', '']]
    examples, problems = csv_example_gen._RowEncoder(header, types).encode(rows)
    assert not problems
    expected = []
    for fields in rows:
        example = tf.train.Example()
        for name, text in zip(header, fields):
            if text:
                feature = example.features.feature[name]
                if types.get(name) == 'INT':
                    feature.int64_list.value.append(int(text))
                elif types.get(name) == 'FLOAT':
                    feature.float_list.value.append(float(text))
                else:
                    feature.bytes_list.value.append(text.encode())
        expected.append(example.SerializeToString(deterministic=True))
    assert examples == expected


def test_an_integer_beyond_64_bits_is_a_bad_row():
    encoder = csv_example_gen._RowEncoder(['count'], {'count': 'INT'})
    examples, problems = encoder.encode([['1'], [str(2 ** 63)], ['2']])
    assert len(examples) == 2
    assert problems == {1: f"column 'count': '{2 ** 63}' is out of the 64-bit integer range"}
