"""Scores raw rows with a pushed model, without a model server: one column per task.

    python -m pipeline.predict --model outputs/serving_model --csv rows.csv [--output scores.csv]
    python -m pipeline.predict --model outputs/serving_model --json request_example.json

`--model` is a SavedModel or a serving directory (its newest numbered version is used). The rows go
through the model's raw-features signature (`serving_raw`, trainer_module/serving.py), as a TF
Serving REST request would. A CSV has a header naming the features (labels and other columns are
ignored); an empty cell of a dense feature is a missing value. A JSON file is a TF Serving REST
body (`{"instances": [...]}`, such as the request_example.json beside each pushed model) or a list
of row objects; a dense feature that is null or absent is missing. The scores are written as CSV,
one row per input row, to `--output` or the terminal.
"""

import argparse
import csv
import json
import math
import os
import sys
from typing import Dict, List

import tensorflow as tf

from trainer_module.serving import instances_to_inputs, signature_input_dtypes
from trainer_module.settings import RAW_SIGNATURE

# Rows scored per call.
BATCH = 1024


def saved_model_dir(path: str) -> str:
    """`path` itself, or the newest numbered version under a serving directory."""
    if tf.saved_model.contains_saved_model(path):
        return path
    versions = sorted((name for name in os.listdir(path) if name.isdigit()), key=int) \
        if os.path.isdir(path) else []
    if not versions:
        raise ValueError(f'{path} holds no SavedModel and no numbered model version')
    return os.path.join(path, versions[-1])


def csv_rows(path: str, dtypes) -> List[Dict]:
    rows = []
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        missing = [name for name, dtype in dtypes.items()
                   if name not in (reader.fieldnames or []) and not dtype.is_floating]
        if missing:
            raise ValueError(f'{path}: no column {missing} in the header (the model needs every '
                             'categorical feature)')
        for line, record in enumerate(reader, start=2):
            row = {}
            for name, dtype in dtypes.items():
                value = record.get(name)
                try:
                    if dtype.is_floating:
                        row[name] = float(value) if value not in (None, '') else math.nan
                    elif dtype.is_integer:
                        row[name] = int(value)
                    else:
                        row[name] = value
                except (TypeError, ValueError):
                    raise ValueError(f'{path}, line {line}, column {name!r}: {value!r} is not '
                                     f'{"a number" if dtype.is_floating else "an integer"}') \
                        from None
            rows.append(row)
    return rows


def json_rows(path: str, dtypes) -> List[Dict]:
    with open(path) as f:
        try:
            body = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not JSON: {e}') from None
    if isinstance(body, dict):
        signature = body.get('signature_name', RAW_SIGNATURE)
        if signature != RAW_SIGNATURE:
            raise ValueError(f'{path}: signature_name {signature!r}: this command scores raw rows '
                             f'with {RAW_SIGNATURE!r}')
        if 'instances' not in body:
            raise ValueError(f'{path}: expected {{"instances": [...]}} (TF Serving\'s row format) '
                             'or a list of rows')
        body = body['instances']
    if not isinstance(body, list):
        raise ValueError(f'{path}: expected a list of rows')
    rows = []
    for index, instance in enumerate(body):
        if not isinstance(instance, dict):
            raise ValueError(f'{path}: row {index} is not an object of named features')
        row = {}
        for name, dtype in dtypes.items():
            value = instance.get(name)
            if value is None:
                if not dtype.is_floating:
                    raise ValueError(f'{path}: row {index} has no {name!r} (only numbers may be '
                                     'missing)')
                value = math.nan
            row[name] = value
        rows.append(row)
    return rows


def predict(signature, rows: List[Dict]) -> Dict[str, List[float]]:
    """{task: one score per row} from a loaded raw-features signature, BATCH rows a call."""
    dtypes = signature_input_dtypes(signature)
    scores: Dict[str, List[float]] = {}
    for start in range(0, len(rows), BATCH):
        outputs = signature(**instances_to_inputs(rows[start:start + BATCH], dtypes))
        for task, values in outputs.items():
            scores.setdefault(task, []).extend(values.numpy().reshape(-1).tolist())
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True,
                        help='a SavedModel, or a serving directory of numbered versions')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--csv', help='a CSV of raw rows, with a header')
    source.add_argument('--json', help='a TF Serving REST body {"instances": [...]}, or a list '
                                       'of rows')
    parser.add_argument('--output', help='the scores as CSV (default: the terminal)')
    args = parser.parse_args(argv)
    try:
        model_path = saved_model_dir(args.model)
        loaded = tf.saved_model.load(model_path)
        if RAW_SIGNATURE not in loaded.signatures:
            raise ValueError(f'{model_path} has no {RAW_SIGNATURE!r} signature (exported by an '
                             'older version: retrain it)')
        signature = loaded.signatures[RAW_SIGNATURE]
        dtypes = signature_input_dtypes(signature)
        rows = (csv_rows(args.csv, dtypes) if args.csv else json_rows(args.json, dtypes))
        if not rows:
            raise ValueError(f'{args.csv or args.json}: no rows')
        scores = predict(signature, rows)
    except (OSError, ValueError) as e:
        sys.exit(f'error: {e}')
    out = open(args.output, 'w', newline='') if args.output else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(list(scores))
        writer.writerows(zip(*scores.values()))
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f'{len(rows)} rows scored into {args.output} ({", ".join(scores)})', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
