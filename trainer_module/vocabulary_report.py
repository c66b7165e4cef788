"""Each vocabulary's size, and the share of values outside it per split: what a bound costs.

A vocabulary bounded by `top_k` or `min_frequency` sends the values it leaves out to its OOV
buckets, in training as in serving; the validation split also holds values training never saw. The
Trainer counts, per feature with a vocabulary, how many of each transformed split's values (train
and validation: the Evaluators read the eval split raw, through the model) got an OOV id (an id at
or after the vocabulary's size; of a list, each value within its length), and writes
the report beside the model (`VOCABULARY_REPORT_FILE`), where the run summary and the dashboards
read it. Hashed features have no vocabulary and no OOV; the report gives their bucket count.
"""

import json
import os
from typing import Dict, List

import numpy as np
import tensorflow as tf

from trainer_module import features
from trainer_module.features.sequence import length_name
from trainer_module.settings import VOCABULARY_REPORT_FILE, TrainerSettings

# TFX writes an Examples artifact's split `name` into a directory `Split-name`.
_SPLIT_PREFIX = 'Split-'
# Examples parsed per batch while counting.
_BATCH = 65536


def split_patterns(train_files: List[str]) -> Dict[str, str]:
    """{split name: its files' pattern} of every split of the transformed examples that hold the
    training split's files (`train_files`, one pattern per artifact, as TFX's FnArgs has them)."""
    splits = {}
    for pattern in train_files:
        root = os.path.dirname(os.path.dirname(pattern))
        for directory in sorted(tf.io.gfile.listdir(root)):
            directory = directory.rstrip('/')
            if directory.startswith(_SPLIT_PREFIX):
                splits[directory[len(_SPLIT_PREFIX):]] = os.path.join(
                    root, directory, os.path.basename(pattern))
    return splits


def vocabulary_report(settings: TrainerSettings, vocabulary_size, splits: Dict[str, str],
                      spec) -> Dict:
    """{feature: its vocabulary ('vocabulary', 'tokens', 'oov_buckets') and, per split, 'values'
    and 'oov_share'; or a hashed feature's 'hash_buckets'}. `vocabulary_size(name)`: the tokens of
    vocabulary `name`; `splits`: {split: files pattern} of transformed examples of Transform's
    feature spec `spec`."""
    named = features.features_by_name(settings)
    report: Dict[str, Dict] = {}
    counted = {}
    for name, ids in features.feature_ids(settings, settings.num_oov_buckets).items():
        if ids.vocabulary is None:
            report[name] = {'hash_buckets': ids.hash_buckets}
            continue
        tokens = vocabulary_size(ids.vocabulary.name)
        report[name] = {'vocabulary': ids.vocabulary.name, 'tokens': tokens,
                        'oov_buckets': ids.vocabulary.num_oov_buckets, 'splits': {}}
        is_list = features.kind_of(named[name]).separator(named[name]) is not None
        counted[name] = (tokens, length_name(name) if is_list else None)
    if not counted:
        return report
    wanted = {key: spec[key] for name, (_, length) in counted.items()
              for key in (name, length) if key is not None}
    for split, pattern in splits.items():
        values = {name: 0 for name in counted}
        oov = {name: 0 for name in counted}
        files = sorted(tf.io.gfile.glob(pattern))
        for batch in tf.data.TFRecordDataset(files, compression_type='GZIP').batch(_BATCH):
            parsed = tf.io.parse_example(batch, wanted)
            for name, (tokens, length) in counted.items():
                ids = parsed[name].numpy().reshape(len(batch), -1)
                present = (np.arange(ids.shape[1]) < parsed[length].numpy().reshape(-1, 1)
                           if length else np.ones(ids.shape, bool))
                values[name] += int(present.sum())
                oov[name] += int(((ids >= tokens) & present).sum())
        for name in counted:
            report[name]['splits'][split] = {
                'values': values[name],
                'oov_share': oov[name] / values[name] if values[name] else None}
    return report


# The run summary names a vocabulary whose OOV share in some split is at least this.
NOTABLE_OOV_SHARE = 0.01


def describe(name: str, entry: Dict) -> str:
    """One line of the report: a feature's vocabulary and its OOV share per split, or its hash
    buckets."""
    if 'hash_buckets' in entry:
        return f'{name}: hashed into {entry["hash_buckets"]:,} buckets (no vocabulary)'
    shared = '' if entry['vocabulary'] == name else f" ({entry['vocabulary']}'s)"
    shares = ', '.join(f'{split} {values["oov_share"]:.1%}' for split, values in
                       entry['splits'].items() if values['oov_share'] is not None)
    return (f'{name}: {entry["tokens"]:,} tokens{shared} + {entry["oov_buckets"]} OOV buckets; '
            f'values OOV: {shares or "none read"}')


def notable(report: Dict) -> Dict:
    """The entries of `report` a person may want to act on: hashed features, and vocabularies
    with at least NOTABLE_OOV_SHARE of some split's values OOV."""
    return {name: entry for name, entry in report.items()
            if 'hash_buckets' in entry or any(
                (values['oov_share'] or 0) >= NOTABLE_OOV_SHARE
                for values in entry['splits'].values())}


def write_vocabulary_report(report: Dict, model_dir: str):
    """Writes `report` into the model artifact's directory `model_dir`."""
    with tf.io.gfile.GFile(os.path.join(model_dir, VOCABULARY_REPORT_FILE), 'w') as f:
        f.write(json.dumps(report, indent=2, sort_keys=True))


def read_vocabulary_report(model_dir: str) -> Dict:
    """The report the Trainer wrote into the model artifact at `model_dir` ({} if none)."""
    path = os.path.join(model_dir, VOCABULARY_REPORT_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
