"""UCI census-income (KDD), the MMoE paper's real-data benchmark, as a data set of the pipeline.

    python -m pipeline.datasets.census --input census-income.data --eval-input census-income.test \\
        --out census
    python local_runner.py --config census/config.yaml

The UCI files (https://archive.ics.uci.edu/dataset/117/census-income-kdd) have no header and 42
comma-separated fields per row, values with a leading space and '?' where unknown; DeepCTR's
`census-income.sample` has a row id in front (43 fields). Both are read. The loader writes the CSV
layout the pipeline reads (a header row; `train/census.csv`, and `eval/census.csv` from
`--eval-input`), a schema and a config with the two tasks of DeepCTR's multi-task example and the
paper's first task group: `income` (income over 50K) and `marital` (never married). Unknown values
become missing ones. `instance_weight` is left out: UCI documents it as a sampling weight, not an
attribute. Without `--eval-input`, the config splits the rows 8:1:1 by hash into train,
validation and eval. Gzipped files (`.gz`) are read as they are.
"""

import argparse
import csv
import dataclasses
import gzip
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd
from google.protobuf import text_format

from pipeline.config import Task
from pipeline.draft import draft_config, draft_schema
from trainer_module import features
from trainer_module.features import SparseFeature

CSV_NAME = 'census.csv'
# The 42 fields of a UCI row, in order (the names DeepCTR's examples/run_mtl.py uses).
COLUMNS = (
    'age', 'class_worker', 'det_ind_code', 'det_occ_code', 'education', 'wage_per_hour',
    'hs_college', 'marital_stat', 'major_ind_code', 'major_occ_code', 'race', 'hisp_origin', 'sex',
    'union_member', 'unemp_reason', 'full_or_part_emp', 'capital_gains', 'capital_losses',
    'stock_dividends', 'tax_filer_stat', 'region_prev_res', 'state_prev_res', 'det_hh_fam_stat',
    'det_hh_summ', 'instance_weight', 'mig_chg_msa', 'mig_chg_reg', 'mig_move_reg', 'mig_same',
    'mig_prev_sunbelt', 'num_emp', 'fam_under_18', 'country_father', 'country_mother',
    'country_self', 'citizenship', 'own_or_self', 'vet_question', 'vet_benefits', 'weeks_worked',
    'year', 'income_50k')
DENSE = ('age', 'wage_per_hour', 'capital_gains', 'capital_losses', 'stock_dividends', 'num_emp',
         'weeks_worked')
DROPPED = ('instance_weight', 'income_50k', 'marital_stat')
# {task: its label column}
TASKS = {'income': 'income_over_50k', 'marital': 'never_married'}
SLICE = 'sex'


class CensusError(ValueError):
    pass


def read_uci(path: str) -> pd.DataFrame:
    """A UCI census-income file (42 fields, or 43 with a leading row id) as named columns, with
    the labels derived and the unused columns dropped."""
    rows = []
    with (gzip.open(path, 'rt', newline='') if path.endswith('.gz')
          else open(path, newline='')) as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) == len(COLUMNS) + 1:
                row = row[1:]
            if len(row) != len(COLUMNS):
                raise CensusError(f'{path}, line {number}: {len(row)} fields, expected '
                                  f'{len(COLUMNS)} (or {len(COLUMNS) + 1} with a row id)')
            rows.append([value.strip() for value in row])
    if not rows:
        raise CensusError(f'{path}: no rows')
    frame = pd.DataFrame(rows, columns=COLUMNS).replace('?', None)
    income = frame['income_50k']
    unknown = sorted(set(income) - {'- 50000.', '50000+.'})
    if unknown:
        raise CensusError(f'{path}: income_50k has values other than "- 50000." and "50000+.": '
                          f'{unknown[:5]}')
    frame[TASKS['income']] = (income == '50000+.').astype(int)
    frame[TASKS['marital']] = (frame['marital_stat'] == 'Never married').astype(int)
    frame = frame.drop(columns=list(DROPPED))
    for name in frame.columns:
        if name in DENSE:
            frame[name] = pd.to_numeric(frame[name]).astype(float)
        elif name not in TASKS.values():
            frame[name] = frame[name].astype('string')
    return frame


def roles(frame: pd.DataFrame) -> Dict[str, Tuple[str, Any, str]]:
    """The draft's {column: (role, feature, why)}, by the UCI documentation rather than guessed:
    the labels, the continuous columns numeric (as the draft would scale them), the rest
    categorical."""
    found: Dict[str, Tuple[str, Any, str]] = {}
    for name in frame.columns:
        if name in TASKS.values():
            found[name] = ('binary_label', None, 'a task label')
        elif name in DENSE:
            found[name] = (features.numeric.KIND.role,
                           *features.numeric.KIND.draft(name, frame[name], frame))
        else:
            found[name] = (features.categorical.KIND.role, SparseFeature(name, embedding_dim=8),
                           'categorical in the UCI documentation')
    return found


def convert(inputs: List[str], out_dir: str, eval_inputs: Optional[List[str]] = None) -> Dict:
    """Writes train/census.csv (and eval/census.csv), schema.pbtxt and config.yaml into
    `out_dir`; returns {'train': rows, 'eval': rows, 'positive_rate': {task: rate}}."""
    train = pd.concat([read_uci(path) for path in inputs], ignore_index=True)
    splits = {'train': train}
    if eval_inputs:
        splits['eval'] = pd.concat([read_uci(path) for path in eval_inputs], ignore_index=True)
    for split, frame in splits.items():
        os.makedirs(os.path.join(out_dir, split), exist_ok=True)
        frame.to_csv(os.path.join(out_dir, split, CSV_NAME), index=False)

    column_roles = roles(train)
    schema = draft_schema(train, column_roles)
    # The full files have unknowns in columns where a sample may have none.
    for feature in schema.feature:
        if feature.name not in TASKS.values():
            feature.presence.ClearField('min_fraction')
    schema_path = os.path.abspath(os.path.join(out_dir, 'schema.pbtxt'))
    with open(schema_path, 'w') as f:
        f.write(text_format.MessageToString(schema))
    config = draft_config(train, column_roles, os.path.abspath(out_dir), schema_path, 'census')
    config = dataclasses.replace(
        config, slice_features=(SLICE,),
        tasks=tuple(Task(name=name, label=label) for name, label in TASKS.items()),
        csv_pattern=f'train/{CSV_NAME}',
        eval_csv_pattern=f'eval/{CSV_NAME}' if eval_inputs else None)
    with open(os.path.join(out_dir, 'config.yaml'), 'w') as f:
        f.write('# UCI census-income, converted by `python -m pipeline.datasets.census`.\n')
        f.write(config.to_yaml())
    return {'train': len(train), 'eval': len(splits['eval']) if eval_inputs else None,
            'positive_rate': {task: round(float(train[label].mean()), 4)
                              for task, label in TASKS.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', required=True, action='append',
                        help='a UCI file for training (census-income.data); repeatable')
    parser.add_argument('--eval-input', action='append',
                        help='a UCI file for evaluation (census-income.test); repeatable')
    parser.add_argument('--out', required=True, help='where the CSVs, schema and config go')
    args = parser.parse_args(argv)
    try:
        report = convert(args.input, args.out, args.eval_input)
    except (CensusError, OSError) as e:
        sys.exit(f'error: {e}')
    print(f'wrote {report["train"]} training rows'
          + (f' and {report["eval"]} eval rows' if report['eval'] else '')
          + f' to {args.out}; positive rates {report["positive_rate"]}')
    print(f'run: python local_runner.py --config {os.path.join(args.out, "config.yaml")}')


if __name__ == '__main__':
    main()
