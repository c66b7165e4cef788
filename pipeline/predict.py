"""Scores raw rows with a pushed model, without a model server: one column per task.

    python -m pipeline.predict --model outputs/serving_model --csv rows.csv [--output scores.csv]
    python -m pipeline.predict --model outputs/serving_model --json request_example.json

`--model` is a SavedModel or a serving directory (its newest numbered version is used). The rows go
through the model's raw-features signature (`serving_raw`, trainer_module/serving.py), as a TF
Serving REST request would. Its inputs are the model's features: dense ones (numbers, where a
value may be missing), categorical ones (strings, or integers such as `hour`). Input the model
would misread is refused, never guessed at: the command scores nothing and exits with status 1
and `error: FILE, line N (CSV) or instance N (JSON), column or feature NAME: what is wrong`; a
name that is no feature is given with the feature it may be a misspelling of.

CSV. The lines are read by the pipeline's own rules (components/csv_lines.py): UTF-8 text split
at '\n', '\r\n' and a lone '\r', so that a value holds no line break, in CSV's default dialect; a
blank line is no row; the first line that is not blank is the header. A line is refused that
those rules refuse (not UTF-8, a NUL, an open quote, over 1 MiB)
or has another number of fields than the header. The header names every feature once: a dense
feature without values is a column of empty cells, not an absent column, so that a misspelt
column is an error rather than a feature missing from every row. Other columns (labels, ids kept
beside the rows) are not read, and are named on stderr. An empty cell of a dense feature is a
missing value, of a list feature an empty list, of a categorical feature an error; a list
feature's cell is read as it is, its values with the feature's separator between them. A dense
feature's cell is otherwise a number as Python's float() reads it (as the pipeline's reader
does), within float32's range, the schema's FLOAT (a larger one would be infinite there, a value
the model was never trained on); 'nan' and 'inf' are refused (the empty cell is the missing
value). An integer feature's cell is an integer within int64's range.

JSON. A file is a TF Serving REST body (`{"instances": [...]}` with an optional
"signature_name", such as the request_example.json beside each pushed model) or a list of
instances; instance N is the Nth, from 0. An instance is an object of the features, each key once;
as TF Serving does, a key that is no feature is refused. A dense feature that is null, NaN (which
TF Serving accepts, and request_example.json holds for a missing number) or absent is missing;
otherwise it is a number within float32's range (not Infinity, a bool, a string, a list or an
object). A categorical feature is a JSON integer within int64's range or a string, as its input
is, and present. A list feature (a model's `sequence_features`) is the string a CSV cell of it
holds, its values with the feature's separator between them, or a JSON list of strings and
integers (none of which holds the separator); null, absent or "" is an empty list, as an empty
CSV cell is.

The scores are written as CSV, one row per input row and a column per task in the model's task
order (by name for a SavedModel without the Trainer's settings), to the terminal or to
`--output`, a file written whole or not at all (beside it first, then renamed over it; it is
opened before the model loads, so that an output that cannot be written fails at once).
"""

import argparse
import csv
import difflib
import itertools
import json
import math
import os
import re
import sys
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from components import csv_lines
from trainer_module import features
from trainer_module.serving import exported_settings, instances_to_inputs, signature_input_dtypes
from trainer_module.settings import RAW_SIGNATURE

# Rows scored per call.
BATCH = 1024
# The schema's FLOAT is float32: a larger number would become infinite there, a value the model
# was never trained on.
FLOAT32_MAX = float(np.finfo(np.float32).max)
# JSON has no leading zeros: an integer of more digits is beyond FLOAT32_MAX and int64 alike.
_JSON_INT_DIGITS = len(str(int(FLOAT32_MAX)))
# What float() reads as NaN or an infinity without a number in it.
_NON_FINITE = re.compile(r'\s*[+-]?(nan|inf|infinity)\s*', re.IGNORECASE)
# An integer as int() reads one: one that int() refuses anyway is too long for any range.
_INTEGER = re.compile(r'\s*[+-]?\d+(_\d+)*\s*')
# The keys of TF Serving's row-format body.
_BODY_KEYS = ('signature_name', 'instances')
# The most characters of a value that a message quotes.
_SHOWN = 60
# How alike (difflib's ratio) a name and a feature must be for a message to ask whether the one is
# a misspelling of the other: 'prise' and 'price' are 0.8 alike, the label 'purchase' and 'price'
# 0.62.
_NEAR = 0.75


def saved_model_dir(path: str) -> str:
    """`path` itself, or the newest numbered version under a serving directory."""
    if tf.saved_model.contains_saved_model(path):
        return path
    versions = sorted((name for name in os.listdir(path) if name.isdigit()), key=int) \
        if os.path.isdir(path) else []
    if not versions:
        raise ValueError(f'{path} holds no SavedModel and no numbered model version')
    return os.path.join(path, versions[-1])


def _cut(text: str) -> str:
    """`text` as a message quotes it: at most _SHOWN characters of it."""
    return text if len(text) <= _SHOWN else f'{text[:_SHOWN]}... ({len(text)} characters)'


def _names(names, features) -> str:
    """`names` quoted, each with the feature it may be a misspelling of."""
    named = []
    for name in names:
        close = difflib.get_close_matches(name, features, n=1, cutoff=_NEAR)
        named.append(f'{_cut(repr(name))} (did you mean {close[0]!r}?)' if close
                     else _cut(repr(name)))
    return ', '.join(named)


def _expected(dtype: tf.DType) -> str:
    """What a value of an input of `dtype` must be."""
    if dtype.is_floating:
        return "a number within float32's range"
    if dtype.is_integer:
        return f"an integer within {dtype.name}'s range"
    return 'a string'


def _csv_value(text: str, dtype: tf.DType):
    """A CSV cell as a value of `dtype`'s Python type (NaN: missing), or ValueError saying why
    not."""
    if text == '':
        if dtype.is_floating:
            return math.nan
        raise ValueError('an empty cell: only a dense feature may be missing')
    if dtype.is_floating:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f'{_cut(repr(text))} is not a number') from None
        if _NON_FINITE.fullmatch(text):
            raise ValueError(f'{text!r} is not a number (an empty cell is a missing value)')
        if abs(value) > FLOAT32_MAX:
            raise ValueError(f'{_cut(repr(text))} is not {_expected(dtype)} '
                             f'(±{FLOAT32_MAX:.8g})')
        return value
    if dtype.is_integer:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f'{_cut(repr(text))} is not '
                             f'{_expected(dtype) if _INTEGER.fullmatch(text) else "an integer"}'
                             ) from None
        if not dtype.min <= value <= dtype.max:
            raise ValueError(f'{_cut(repr(text))} is not {_expected(dtype)}')
        return value
    return text


def csv_rows(path: str, dtypes: Mapping[str, tf.DType],
             separators: Optional[Mapping[str, str]] = None) -> List[Dict]:
    """The rows of the CSV file `path` as {feature: value}, for a signature of inputs `dtypes`
    ({name: dtype}): floats (NaN where missing), ints and strs; a list feature (one of
    `separators`) its cell as it is, '' for an empty list. ValueError naming the file, the line
    and the column of the first thing that the module docstring refuses. The columns that are
    not features are named on stderr."""
    separators = separators or {}
    with open(path, 'rb') as f:
        numbered = list(enumerate(itertools.chain.from_iterable(csv_lines.physical_lines(f)),
                               start=1))
    lines = iter(numbered)
    header = None
    for number, line in lines:
        if line:
            try:
                header = csv_lines.fields(line)
            except ValueError as e:
                raise ValueError(f'{path}, line {number} (the header): {e}') from None
            break
    if header is None:
        raise ValueError(f'{path}: no header (the file is empty or blank)')
    repeated = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in dtypes if name not in header]
    if repeated or missing:
        problem = (f'repeats the columns {_names(repeated, [])}' if repeated else
                   f'no column {_names(missing, header)}: every feature of the model needs one '
                   "(a dense feature's cells may all be empty)")
        raise ValueError(f'{path}, line {number} (the header): {problem}; the features of the '
                         f'model are {sorted(dtypes)}')
    ignored = [name for name in header if name not in dtypes]
    if ignored:
        print(f'{path}: columns not read (not features of the model): '
              f'{_names(ignored, list(dtypes))}', file=sys.stderr)
    columns = {name: header.index(name) for name in dtypes}
    rows = []
    for number, line in lines:
        if not line:
            continue
        try:
            fields = csv_lines.fields(line)
        except ValueError as e:
            raise ValueError(f'{path}, line {number}: {e}') from None
        if len(fields) != len(header):
            raise ValueError(f'{path}, line {number}: {len(fields)} fields, and the header has '
                             f'{len(header)}')
        row = {}
        for name, dtype in dtypes.items():
            if name in separators:
                row[name] = fields[columns[name]]
                continue
            try:
                row[name] = _csv_value(fields[columns[name]], dtype)
            except ValueError as e:
                raise ValueError(f'{path}, line {number}, column {name!r}: {e}') from None
        rows.append(row)
    return rows


class _Object(dict):
    """A JSON object that names the keys it repeats (json keeps a repeated key's last value)."""

    def __init__(self, pairs):
        super().__init__(pairs)
        keys = [key for key, _ in pairs]
        self.repeated = sorted({key for key in keys if keys.count(key) > 1}) \
            if len(self) < len(keys) else []


def _json_int(text: str):
    # int() refuses more than sys.get_int_max_str_digits() digits, before the row is known; as a
    # float, such a number is refused by its feature's range, naming the row.
    return float(text) if len(text.lstrip('-')) > _JSON_INT_DIGITS else int(text)


def _json_shown(value) -> str:
    """A JSON value as a message names it: its JSON type and its JSON text."""
    kind = ('bool' if isinstance(value, bool) else 'list' if isinstance(value, list) else
            'object' if isinstance(value, dict) else 'string' if isinstance(value, str) else
            'number')
    return f'{kind} {_cut(json.dumps(value))}'


def _json_value(value, dtype: tf.DType):
    """A JSON value (None: null or absent) as a value of `dtype`'s Python type (NaN: missing), or
    ValueError saying why not."""
    if dtype.is_floating and (value is None or isinstance(value, float) and math.isnan(value)):
        return math.nan
    if value is None:
        raise ValueError('missing (null or absent): only a dense feature may be missing')
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype.is_floating:
        valid = number and abs(value) <= FLOAT32_MAX
    elif dtype.is_integer:
        valid = number and isinstance(value, int) and dtype.min <= value <= dtype.max
    else:
        valid = isinstance(value, str)
    if not valid:
        missing = ' (or null for a missing value)' if dtype.is_floating else ''
        raise ValueError(f'expected {_expected(dtype)}{missing}, got {_json_shown(value)}')
    if isinstance(value, str):
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            raise ValueError(f'{_json_shown(value)} is not text (it escapes a lone surrogate)'
                             ) from None
    return float(value) if dtype.is_floating else value


def _json_list(value, separator: str) -> str:
    """A list feature's JSON value (its values' delimited string, or a list of strings and
    integers; null or absent: an empty list) as the delimited string its input takes, or
    ValueError saying why not."""
    if value is None:
        return ''
    if isinstance(value, str):
        return _json_value(value, tf.string)
    if not isinstance(value, list):
        raise ValueError(f'expected a list of values or their {separator!r}-separated string, '
                         f'got {_json_shown(value)}')
    texts = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ValueError(f'a list of strings or integers, got {_json_shown(item)} in it')
        text = _json_value(item, tf.string) if isinstance(item, str) else str(item)
        if separator in text:
            raise ValueError(f'the value {_json_shown(item)} holds the separator {separator!r}')
        texts.append(text)
    return separator.join(texts)


def json_rows(path: str, dtypes: Mapping[str, tf.DType],
              separators: Optional[Mapping[str, str]] = None) -> List[Dict]:
    """The instances of the JSON file `path` as {feature: value}, for a signature of inputs
    `dtypes` ({name: dtype}): floats (NaN where missing), ints and strs; a list feature (one of
    `separators`) the delimited string of its values. ValueError naming the file, the instance
    and the feature of the first thing that the module docstring refuses."""
    separators = separators or {}
    with open(path, 'rb') as f:
        data = f.read()
    try:
        body = json.loads(data, object_pairs_hook=_Object, parse_int=_json_int)
    except RecursionError:
        raise ValueError(f'{path}: not JSON this command reads: nested too deeply') from None
    except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8 (-16, -32) text
        raise ValueError(f'{path}: not JSON: {e}') from None
    if isinstance(body, _Object):
        unknown = sorted(set(body) - set(_BODY_KEYS))
        if body.repeated or unknown:
            keys = (f'repeats the keys {_names(body.repeated, [])}' if body.repeated else
                    f'has the keys {_names(unknown, _BODY_KEYS)}')
            raise ValueError(f'{path}: the body {keys}: TF Serving\'s row format has '
                             f'{list(_BODY_KEYS)}')
        signature = body.get('signature_name', RAW_SIGNATURE)
        if signature != RAW_SIGNATURE:
            raise ValueError(f'{path}: signature_name {_json_shown(signature)}: this command '
                             f'scores raw rows with {RAW_SIGNATURE!r}')
        if 'instances' not in body:
            raise ValueError(f'{path}: expected {{"instances": [...]}} (TF Serving\'s row format) '
                             'or a list of instances')
        body = body['instances']
    if not isinstance(body, list):
        raise ValueError(f'{path}: expected a list of instances, got {_json_shown(body)}')
    rows = []
    for index, instance in enumerate(body):
        where = f'{path}, instance {index}'
        if not isinstance(instance, _Object):
            raise ValueError(f'{where}: expected an object of named features, got '
                             f'{_json_shown(instance)}')
        if instance.repeated:
            raise ValueError(f'{where}: repeats the keys {_names(instance.repeated, [])}')
        unknown = sorted(set(instance) - set(dtypes))
        if unknown:
            raise ValueError(f'{where}: {_names(unknown, list(dtypes))} '
                             f'{"are not features" if len(unknown) > 1 else "is not a feature"} '
                             f'of the model, whose features are {sorted(dtypes)}')
        row = {}
        for name, dtype in dtypes.items():
            try:
                row[name] = (_json_list(instance.get(name), separators[name])
                             if name in separators else _json_value(instance.get(name), dtype))
            except ValueError as e:
                raise ValueError(f'{where}, feature {name!r}: {e}') from None
        rows.append(row)
    return rows


def predict(signature, rows: List[Dict], tasks: Sequence[str] = ()) -> Dict[str, List[float]]:
    """{task: one score per row} from a loaded raw-features signature, BATCH rows a call, in the
    order of `tasks` (the model's task order), then by name: a signature's outputs come in no
    order of their own, and the columns of the scores must not move between runs."""
    dtypes = signature_input_dtypes(signature)
    scores: Dict[str, List[float]] = {}
    for start in range(0, len(rows), BATCH):
        outputs = signature(**instances_to_inputs(rows[start:start + BATCH], dtypes))
        for task, values in outputs.items():
            scores.setdefault(task, []).extend(values.numpy().reshape(-1).tolist())
    order = [task for task in tasks if task in scores] + sorted(set(scores) - set(tasks))
    return {task: scores[task] for task in order}


def write_scores(scores: Dict[str, List[float]], out) -> None:
    """`scores` ({task: one score per row}) as CSV: a header of the tasks, then a line a row."""
    writer = csv.writer(out)
    writer.writerow(list(scores))
    writer.writerows(zip(*scores.values()))


def open_partial(path: str):
    """A new file beside `path`, open for writing, that finish_partial renames to `path`; opened
    before the rows are scored, so that an output that cannot be written costs no wait.
    ValueError naming `path` if it cannot be made."""
    if os.path.isdir(path):
        raise ValueError(f'cannot write --output {path}: it is a directory')
    partial = os.path.join(os.path.dirname(path),
                           f'.{os.path.basename(path)}.{os.getpid()}.partial')
    try:
        return open(partial, 'x', newline='')
    except OSError as e:
        raise ValueError(f'cannot write --output {path}: {e.strerror or e}') from None


def finish_partial(out, path: str, scores: Dict[str, List[float]]) -> None:
    """`scores` into `out` (from open_partial), which then replaces `path`. ValueError naming
    `path` if that fails."""
    try:
        write_scores(scores, out)
        out.close()
        os.replace(out.name, path)
    except OSError as e:
        raise ValueError(f'cannot write --output {path}: {e.strerror or e}') from None


def main(argv=None):
    """The command: 0 once the scores are written; SystemExit('error: ...') if not."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True,
                        help='a SavedModel, or a serving directory of numbered versions')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--csv', help='a CSV of raw rows, with a header')
    source.add_argument('--json', help='a TF Serving REST body {"instances": [...]}, or a list '
                                       'of rows')
    parser.add_argument('--output', help='the scores as CSV, written whole or not at all '
                                         '(default: the terminal)')
    args = parser.parse_args(argv)
    out = None
    try:
        out = open_partial(args.output) if args.output else None
        model_path = saved_model_dir(args.model)
        loaded = tf.saved_model.load(model_path)
        if RAW_SIGNATURE not in loaded.signatures:
            raise ValueError(f'{model_path} has no {RAW_SIGNATURE!r} signature (exported by an '
                             'older version: retrain it)')
        signature = loaded.signatures[RAW_SIGNATURE]
        dtypes = signature_input_dtypes(signature)
        settings = exported_settings(model_path)
        separators = features.separators(settings) if settings else {}
        rows = (csv_rows(args.csv, dtypes, separators) if args.csv else
                json_rows(args.json, dtypes, separators))
        if not rows:
            raise ValueError(f'{args.csv or args.json}: no rows')
        scores = predict(signature, rows, settings.task_names if settings else ())
        if out:
            finish_partial(out, args.output, scores)
        else:
            write_scores(scores, sys.stdout)
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')
    finally:
        # Nothing half-written is left: the partial file is gone unless renamed to --output.
        if out:
            out.close()
            if os.path.exists(out.name):
                os.unlink(out.name)
    if args.output:
        print(f'{len(rows)} rows scored into {args.output} ({", ".join(scores)})', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
