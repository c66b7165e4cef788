"""Drafts a `schema.pbtxt` and a pipeline config from a CSV, for a person to review before a run.

    python -m pipeline.draft --csv my_data/part-0.csv --out my_project [--labels click,watch_time]

Column roles are guessed: label columns by name (click, label, conversion, purchase, target, ...) unless
`--labels` names them, a label with only 0/1 values is a binary task and any other a regression task;
every other column is asked of each kind of feature in turn (trainer_module/features/): a text column
whose cells hold several values with '|' between them is a list (sharing the vocabulary of a column
that holds its values, such as an item id for a history of items); a text column, or an integer one
with few distinct values (or named like an id), is categorical, with a bounded vocabulary where most
of its many values are rare; other numbers are numeric. Each guess is printed with why.
Check every role, then run
`python local_runner.py --config my_project/config.yaml`.
"""

import argparse
import dataclasses
import os
import re
import sys
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline.config import EvaluationConfig, Gate, PipelineConfig, Task
from trainer_module import features
from trainer_module.task_types.binary import AUC, BINARY
from trainer_module.task_types.regression import MSE, REGRESSION

LABEL_NAME = re.compile(r'^(is_)?(label|target|y|click|clicked|conversion|converted|purchase|purchased|'
                        r'buy|like|liked)$|^label_|_label$|_target$', re.IGNORECASE)
SAMPLE_ROWS = 200000
_SPARSE, _LIST = features.categorical.KIND.role, features.sequence.KIND.role


class DraftError(ValueError):
    pass


def _is_binary(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and set(column.dropna().unique()) <= {0, 1}


def guess_roles(frame: pd.DataFrame, labels: Optional[List[str]] = None
                ) -> Dict[str, Tuple[str, Any, str]]:
    """{column: (role, feature, why)}: the role is 'binary_label', 'regression_label' or a kind's
    `role` ('sparse', 'sequence', 'dense'), the feature its config (None for a label)."""
    if labels:
        unknown = [label for label in labels if label not in frame.columns]
        if unknown:
            raise DraftError(f'--labels: {unknown} are not columns of the CSV '
                             f'(columns: {list(frame.columns)})')
    roles: Dict[str, Tuple[str, Any, str]] = {}
    for name in frame.columns:
        column = frame[name]
        is_label = name in labels if labels else bool(LABEL_NAME.search(name))
        if is_label:
            if not pd.api.types.is_numeric_dtype(column):
                raise DraftError(f'label column {name!r} is not numeric')
            roles[name] = (('binary_label', None, '0/1 values') if _is_binary(column) else
                           ('regression_label', None, 'numbers'))
            continue
        for kind in features.DRAFT_ORDER:
            guess = kind.draft(name, column, frame)
            if guess is not None:
                roles[name] = (kind.role, *guess)
                break
    # A list shares the table of a column drafted as categorical only.
    for name, (role, feature, why) in roles.items():
        shared = getattr(feature, 'embedding_name', None)
        if shared is not None and roles[shared][0] != _SPARSE:
            roles[name] = (role, dataclasses.replace(feature, embedding_name=None),
                           why.split('; ')[0])
    if not any(role.endswith('_label') for role, _, _ in roles.values()):
        raise DraftError('no label column found: name them with --labels col1,col2')
    return roles


def draft_schema(frame: pd.DataFrame, roles: Dict[str, Tuple[str, Any, str]]
                 ) -> schema_pb2.Schema:
    """Types, presence and one value per row; labels of binary tasks get the domain {0, 1}.
    Labels, and categorical columns the sample always fills, are required; numbers are optional,
    since Transform fills a missing one with the mean."""
    schema = schema_pb2.Schema()
    for name, (role, _, _) in roles.items():
        column = frame[name]
        feature = schema.feature.add(name=name)
        if not pd.api.types.is_numeric_dtype(column):
            feature.type = schema_pb2.BYTES
        elif pd.api.types.is_integer_dtype(column) or _is_binary(column):
            feature.type = schema_pb2.INT
        else:
            feature.type = schema_pb2.FLOAT
        required = role.endswith('_label') or (role == _SPARSE and not column.isna().any())
        feature.presence.min_count = 1
        if required:
            feature.presence.min_fraction = 1.0
        feature.value_count.min = 1
        if role != _LIST:  # a list: any number of values (none: absent)
            feature.value_count.max = 1
        if role == 'binary_label':
            feature.int_domain.min = 0
            feature.int_domain.max = 1
        elif role == _SPARSE and feature.type == schema_pb2.INT:
            feature.int_domain.is_categorical = True
    return schema


# Names of a column that identifies the user (or visitor, customer...) an impression was shown to.
_USER_COLUMN = re.compile(r'(^|_)((user|customer|member|visitor|account)_?id|uid)$|^users?$',
                          re.IGNORECASE)


def _user_column(frame: pd.DataFrame, categorical: List[str]) -> Optional[str]:
    """The categorical column most likely to name the user of each row, for the group AUC: by
    name, and repeated (a user has several rows, or it groups nothing); the one with the most
    values among several; None when there is none."""
    candidates = [name for name in categorical if _USER_COLUMN.search(name)
                  and frame[name].nunique() < 0.5 * frame[name].notna().sum()]
    return max(candidates, key=lambda name: frame[name].nunique(), default=None)


def draft_config(frame: pd.DataFrame, roles: Dict[str, Tuple[str, Any, str]],
                 data_dir: str, schema_path: str, pipeline_name: str) -> PipelineConfig:
    # A regression task's gate starts at the label variance: no worse than predicting the mean.
    tasks = [Task(name=name, label=name, type=BINARY.name, gate=Gate(metric=AUC.name))
             if role == 'binary_label' else
             Task(name=name, label=name, type=REGRESSION.name,
                  gate=Gate(metric=MSE.name, max=round(float(frame[name].var()), 6)))
             for name, (role, _, _) in roles.items() if role.endswith('_label')]
    drafted: Dict[str, Any] = {kind.section: tuple(feature for role, feature, _ in roles.values()
                                   if role == kind.role)
               for kind in features.KINDS}
    # The categorical feature with the fewest values is the likeliest useful slice (device,
    # country, ...).
    slices = sorted((feature.name for feature in drafted[features.categorical.KIND.section]),
                    key=lambda name: frame[name].nunique())[:1]
    return PipelineConfig(
        pipeline_name=pipeline_name, data=data_dir, schema=schema_path, **drafted,
        tasks=tuple(tasks), slice_features=tuple(slices),
        evaluation=EvaluationConfig(group_by=_user_column(
            frame, [f.name for f in drafted[features.categorical.KIND.section]])),
        drift=())  # the default bounds name the bundled data's columns


def draft(csv_path: str, out_dir: str, labels: Optional[List[str]] = None,
          pipeline_name: Optional[str] = None) -> Dict[str, Tuple[str, Any, str]]:
    """Writes `schema.pbtxt` and `config.yaml` into `out_dir`; returns guess_roles' {column:
    (role, feature, why)}."""
    if not os.path.isfile(csv_path):
        raise DraftError(f'{csv_path}: no such file')
    try:
        frame = pd.read_csv(csv_path, nrows=SAMPLE_ROWS, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DraftError(f'{csv_path}: cannot read as CSV: {e}') from None
    if frame.empty:
        raise DraftError(f'{csv_path}: has a header but no rows')
    roles = guess_roles(frame, labels)
    os.makedirs(out_dir, exist_ok=True)
    schema_path = os.path.abspath(os.path.join(out_dir, 'schema.pbtxt'))
    with open(schema_path, 'w') as f:
        f.write(text_format.MessageToString(draft_schema(frame, roles)))
    name = pipeline_name or re.sub(r'[^a-z0-9_]+', '_', os.path.basename(
        os.path.abspath(out_dir)).lower()) or 'mmoe'
    config = draft_config(frame, roles, os.path.dirname(os.path.abspath(csv_path)), schema_path,
                          name)
    with open(os.path.join(out_dir, 'config.yaml'), 'w') as f:
        f.write(f'# Drafted from {csv_path} by `python -m pipeline.draft`: check each column role,\n'
                f'# the tasks and their gates, then run `python local_runner.py --config {f.name}`.\n')
        f.write(config.to_yaml())
    return roles


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--csv', required=True, help='a CSV file with a header row')
    parser.add_argument('--out', required=True, help='where to write schema.pbtxt and config.yaml')
    parser.add_argument('--labels', help='comma-separated label columns (default: guessed by name)')
    parser.add_argument('--pipeline-name', help='default: the name of --out')
    args = parser.parse_args(argv)
    try:
        roles = draft(args.csv, args.out, args.labels.split(',') if args.labels else None,
                      args.pipeline_name)
    except DraftError as e:
        sys.exit(f'error: {e}')
    width = max(len(name) for name in roles)
    role_width = max(len(role) for role, _, _ in roles.values())
    for name, (role, _, why) in roles.items():
        print(f'  {name:<{width}}  {role:<{role_width}}  {why}')
    print(f'wrote {os.path.join(args.out, "schema.pbtxt")} and {os.path.join(args.out, "config.yaml")}: '
          'check the roles above, then run python local_runner.py --config '
          f'{os.path.join(args.out, "config.yaml")}')


if __name__ == '__main__':
    main()
