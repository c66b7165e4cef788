"""Warm start: the Trainer's new model starts from the weights of its base model (the model that
serves) instead of from its initializers.

TFX's Trainer, given a `base_model` channel, hands `run_fn` the serving-model directory of that
Model artifact (`fn_args.base_model`: the SavedModel trainer_module/export.py wrote; None when the
channel resolved to nothing). `warm_start(model, settings, tf_transform_output, base_model)`
copies that model's weights into the freshly built `model`:

- Every weight that is not an embedding table (experts, gates, towers, logits, the prediction
  layers' biases, batch normalisation's statistics, the tasks' learned log-variances) is copied as
  it is: the same config builds the same shapes.
- Embedding tables are carried over row by row. A table with a vocabulary (Transform's, rows
  [0, tokens) in the vocabulary file's order, then its OOV buckets) is remapped by token: a token
  in both vocabularies keeps its learned row wherever it now stands, a new token keeps its fresh
  initial row, a dropped token's row goes. The OOV buckets' rows are copied by index when both
  have as many buckets (a value hashes to the same bucket), else they start fresh. A hashed table
  (`hash_buckets`, no vocabulary) is copied by index when its bucket count is the same, else it
  starts fresh, as does a table that changed between a vocabulary and hashing. A table that
  several features share (`embedding_name`) is carried once.
- List features have no padding row: Transform pads their ids with 0 and the model masks the
  padding by the list's length, so row 0 is the vocabulary's first token (or hash bucket 0) and
  is carried as any other.
- Not carried: the optimizer's state (Adam's moments and step count restart, so the first steps
  take the learning rate's full size), the metrics, and nothing of the base's training settings.

The base model's own settings come from its provenance (`PROVENANCE_FILE`, `settings`), its
vocabularies from its `assets/` (the Transform graph is exported inside the SavedModel, with its
vocabulary files, named `preprocessing.vocabulary_asset`). The base model is rebuilt from them
(`build.build_model`, its own vocabulary sizes), its variables restored from the SavedModel's
checkpoint (`variables/variables`) through the model's structure, then copied variable by
variable.

A base model whose features (names, kinds, order, embedding dimensions, tables shared, list
combiners, the columns a cross combines), tasks (names, types, labels) or architecture (the `model`
arguments that make its weights: architecture, experts, levels, hidden units, activation, batch
normalisation) differ from the config's is a mismatch: `training.warm_start_mismatch: fail` raises a
ValueError naming each difference, `cold_start` logs a warning naming them and trains from scratch.
Vocabularies and data are no mismatch (that is what the token carry-over is for), and neither are
training settings (learning rate, epochs, loss weights, regularisation, dropout, seed, loss
weighting).
"""

import json
import logging
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer_module import features
from trainer_module.build import build_model
from trainer_module.features.kind import Ids
from trainer_module.layers import SparseEmbeddings
from trainer_module.settings import PROGRESS_LOGGER, PROVENANCE_FILE, TrainerSettings

PROGRESS = logging.getLogger(PROGRESS_LOGGER)
# The `model` fields that make the weights or what they compute; the others (regularisation,
# dropout, the initializers' seed) only change how the weights are trained.
ARCHITECTURE_FIELDS = ('architecture', 'num_experts', 'shared_expert_num', 'specific_expert_num',
                       'num_levels', 'expert_dnn_hidden_units', 'tower_dnn_hidden_units',
                       'gate_dnn_hidden_units', 'dnn_activation', 'dnn_use_bn')
OPTIMIZER_NOT_CARRIED = "not carried: Adam's moments and step count restart"
_VOCABULARY_ASSET = re.compile(r'vocabulary_\d+_(.*)')


class Mismatch(ValueError):
    """The base model cannot be the start of the config's model: the message names why."""


def cold_report(base_model: Optional[str], reason: str) -> Dict[str, Any]:
    """The report of a model that trains from scratch, for `reason`."""
    return {'base_model': base_model or '', 'warm': False, 'reason': reason, 'tables': {},
            'variables_copied': [], 'variables_fresh': [], 'optimizer': OPTIMIZER_NOT_CARRIED}


def warm_start(model: keras.Model, settings: TrainerSettings, tf_transform_output,
               base_model: Optional[str]) -> Dict[str, Any]:
    """Sets `model`'s weights (built by `build.build_model(settings, feature_columns)` on the
    columns of `tf_transform_output`, a `tft.TFTransformOutput`) from the SavedModel at
    `base_model` (`fn_args.base_model`), as the module docstring says, when
    `settings.training.warm_start` is on and a model is there; leaves them as built otherwise.
    Returns the report: {'base_model': the path given ('' for none), 'warm': whether it started
    from it, 'reason': why it did not ('' when it did), 'tables': {table: {'by': 'token' or
    'index', 'carried', 'new', 'dropped': counts of tokens (of rows for 'index'), 'oov_copied',
    'oov_fresh': OOV rows}}, 'variables_copied': the variables copied whole, 'variables_fresh':
    those with nothing to copy from, 'optimizer': what became of its state}.

    A mismatch (module docstring) raises a ValueError naming it under
    `training.warm_start_mismatch: fail`; under 'cold_start' it is the report's reason."""
    if not settings.training.warm_start:
        return cold_report(base_model, 'training.warm_start is off')
    if not base_model:
        reason = 'no base model given to the Trainer (nothing serves yet)'
        PROGRESS.info('Trainer starts cold: %s', reason)
        return cold_report(base_model, reason)
    if not tf.io.gfile.exists(os.path.join(base_model, 'saved_model.pb')):
        reason = f'no model at {base_model} (nothing serves yet)'
        PROGRESS.info('Trainer starts cold: %s', reason)
        return cold_report(base_model, reason)
    try:
        plan = _plan(model, settings, tf_transform_output, base_model)
    except Mismatch as e:
        if settings.training.warm_start_mismatch == 'fail':
            raise ValueError(f'{e}; set training.warm_start_mismatch: cold_start to train '
                             'from scratch instead') from None
        PROGRESS.warning('Trainer starts cold: %s', e)
        return cold_report(base_model, str(e))
    report = plan.apply()
    PROGRESS.info('Trainer starts warm from %s: %d variables copied; embedding rows %s',
                  base_model, len(report['variables_copied']), '; '.join(
                      f'{name}: {counts["carried"]} carried, {counts["new"]} new, '
                      f'{counts["dropped"]} dropped' for name, counts in report['tables'].items()))
    return report


def read_vocabulary(path: str) -> List[bytes]:
    """The tokens of a vocabulary file, one a line, in order (a table's rows)."""
    with tf.io.gfile.GFile(path, 'rb') as f:
        return [line[:-1] if line.endswith(b'\n') else line for line in f]


def carry_rows(old_table: np.ndarray, old_tokens: Sequence[bytes], old_oov: int,
               new_table: np.ndarray, new_tokens: Sequence[bytes], new_oov: int
               ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """`new_table` ([len(new_tokens) + new_oov, dim], its fresh rows) with the rows of
    `old_table` ([len(old_tokens) + old_oov, dim]) carried over by token: each token of both keeps
    its old row, a new token its fresh one; the OOV rows are copied by index when `old_oov ==
    new_oov`, else stay fresh. Returns (the table, {'by': 'token', 'carried', 'new', 'dropped':
    token counts, 'oov_copied', 'oov_fresh': OOV rows})."""
    _check_rows('old', old_table, len(old_tokens) + old_oov)
    _check_rows('new', new_table, len(new_tokens) + new_oov)
    table = np.array(new_table, copy=True)
    old_rows: Dict[bytes, int] = {}
    for row, token in enumerate(old_tokens):
        old_rows.setdefault(token, row)
    pairs = [(row, old_rows[token]) for row, token in enumerate(new_tokens) if token in old_rows]
    if pairs:
        new_index, old_index = (np.array(side) for side in zip(*pairs))
        table[new_index] = old_table[old_index]
    oov_copied = new_oov if old_oov == new_oov else 0
    if oov_copied:
        table[len(new_tokens):] = old_table[len(old_tokens):]
    carried = len({token for token in new_tokens if token in old_rows})
    return table, {'by': 'token', 'carried': carried, 'new': len(set(new_tokens)) - carried,
                   'dropped': len(old_rows) - carried, 'oov_copied': oov_copied,
                   'oov_fresh': new_oov - oov_copied}


def carry_buckets(old_table: np.ndarray, new_table: np.ndarray
                  ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """A hashed table: `old_table` as it is when it has as many rows (buckets) as `new_table`,
    else `new_table` (fresh). Returns (the table, {'by': 'index', 'carried', 'new', 'dropped':
    row counts, 'oov_copied', 'oov_fresh': 0})."""
    counts: Dict[str, Any] = {'by': 'index', 'oov_copied': 0, 'oov_fresh': 0}
    if old_table.shape == new_table.shape:
        return np.array(old_table, copy=True), {**counts, 'carried': len(new_table), 'new': 0,
                                                'dropped': 0}
    return np.array(new_table, copy=True), {**counts, 'carried': 0, 'new': len(new_table),
                                            'dropped': len(old_table)}


def differences(base: TrainerSettings, new: TrainerSettings) -> List[str]:
    """What makes a model of `base`'s settings no start for one of `new`'s, each as 'the serving
    model has X, this config Y': the features of each kind (names in order), their embedding
    dimensions, the tables lists share, their combiners, queries and matches; the tasks' names,
    types and labels; the architecture's arguments (ARCHITECTURE_FIELDS). Empty when none."""
    found = []

    def differ(what, theirs, ours):
        if theirs != ours:
            found.append(f'the serving model has {what} {theirs!r}, this config {ours!r}')

    for section in features.SECTIONS:
        differ(section, tuple(f.name for f in getattr(base, section)),
               tuple(f.name for f in getattr(new, section)))
    base_features, new_features = features.features_by_name(base), features.features_by_name(new)
    for name, feature in new_features.items():
        theirs = base_features.get(name)
        if type(theirs) is not type(feature):
            continue  # named by its section above
        for what, value in _feature_shape(feature, new_features).items():
            differ(f'{features.kind_of(feature).section}.{name}.{what}',
                   _feature_shape(theirs, base_features)[what], value)
    differ('tasks', base.task_names, new.task_names)
    differ('task types', base.task_types, new.task_types)
    differ('task labels', base.label_columns, new.label_columns)
    for field in ARCHITECTURE_FIELDS:
        differ(f'model.{field}', getattr(base.model, field), getattr(new.model, field))
    return found


def _feature_shape(feature, by_name: Mapping[str, Any]) -> Dict[str, Any]:
    """What of a feature's settings makes the model's weights: its embedding dimension, a
    list's shared table, combiner, query and match (two more inputs to the first layers), and the
    columns a cross combines (its rows are their combinations)."""
    if isinstance(feature, features.SparseFeature):
        return {'embedding_dim': feature.embedding_dim}
    if isinstance(feature, features.CrossFeature):
        return {'embedding_dim': feature.embedding_dim, 'columns': feature.columns}
    if isinstance(feature, features.SequenceFeature):
        return {'embedding_dim': features.sequence.dimension(feature, by_name),
                'embedding_name': feature.embedding_name, 'combiner': feature.combiner,
                'query': feature.query, 'match': feature.match}
    return {}


def read_base_settings(base_model: str) -> TrainerSettings:
    """The Trainer's settings that made the model at `base_model`, from its provenance; Mismatch
    where it has none this code can read."""
    path = os.path.join(base_model, PROVENANCE_FILE)
    if not tf.io.gfile.exists(path):
        raise Mismatch(f'warm start: the serving model at {base_model} has no {PROVENANCE_FILE} '
                       'to tell its features, tasks and architecture')
    with tf.io.gfile.GFile(path) as f:
        provenance = json.load(f)
    try:
        return TrainerSettings.from_dict(provenance['settings'])
    except (KeyError, TypeError, ValueError) as e:
        raise Mismatch(f'warm start: the settings in the serving model\'s {PROVENANCE_FILE} '
                       f'({base_model}) are not ones this Trainer reads: {e}') from None


def base_vocabularies(base_model: str, settings: TrainerSettings) -> Dict[str, List[bytes]]:
    """{vocabulary name: its tokens} of the model at `base_model`, made with `settings`, from
    the vocabulary files of the Transform graph in its `assets/`."""
    # Imported here: preprocessing brings Beam, which only a warm start needs of it.
    from trainer_module.preprocessing import vocabulary_asset
    assets = os.path.join(base_model, 'assets')
    present = set(tf.io.gfile.listdir(assets)) if tf.io.gfile.isdir(assets) else set()
    found = {}
    # Numbered in the order preprocessing_fn counts them: the first feature naming each.
    names = dict.fromkeys(ids.vocabulary.name for ids in _feature_ids(settings).values()
                          if ids.vocabulary is not None)
    for index, name in enumerate(names):
        asset = vocabulary_asset(index, name)
        if asset not in present:
            # Numbered otherwise (an older layout): the one file of its name.
            suffix = _asset_suffix(asset)
            candidates = [p for p in present if _asset_suffix(p) == suffix]
            if len(candidates) != 1:
                raise FileNotFoundError(f'warm start: the serving model at {base_model} has no '
                                        f'vocabulary file {asset} in its assets for {name!r}')
            asset = candidates[0]
        found[name] = read_vocabulary(os.path.join(assets, asset))
    return found


def _asset_suffix(asset: str) -> Optional[str]:
    """The name part of a vocabulary asset's file name (after its number); None for another
    file."""
    match = _VOCABULARY_ASSET.fullmatch(asset)
    return match.group(1) if match else None


def _feature_ids(settings: TrainerSettings) -> Dict[str, Ids]:
    return features.feature_ids(settings, settings.num_oov_buckets)


def _tables(layer: SparseEmbeddings) -> Dict[str, Tuple[int, int, int]]:
    """{table (embedding name): (its variable's index in `layer.tables`, first row, rows)}."""
    # pylint: disable=protected-access
    found: Dict[str, Tuple[int, int, int]] = {}
    for index, (_, _, members) in enumerate(layer._groups):
        for i, first_row, size in members:
            found.setdefault(layer.features[i][0], (index, first_row, size))
    return found


def _weighted_layers(model: keras.Model) -> Dict[str, keras.layers.Layer]:
    return {layer.name: layer for layer in model.layers if layer.weights}


def _short_name(variable) -> str:
    """A variable's own name, without the scopes that Keras numbers per process."""
    return variable.name.split('/')[-1]


class _Plan:
    """What to copy, checked before anything is: (base variable, new variable) pairs copied whole,
    the embedding tables' new values, and the report."""

    def __init__(self, base_model: str):
        self.base_model = base_model
        self.copies: List[Tuple[tf.Variable, tf.Variable]] = []
        self.fresh: List[str] = []
        # (new variable, first row, rows, its new rows)
        self.blocks: List[Tuple[tf.Variable, int, int, np.ndarray]] = []
        self.tables: Dict[str, Dict[str, Any]] = {}

    def apply(self) -> Dict[str, Any]:
        for source, target in self.copies:
            target.assign(source.numpy())
        by_variable: Dict[int, Tuple[tf.Variable, np.ndarray]] = {}
        for variable, first_row, rows, values in self.blocks:
            _, value = by_variable.setdefault(id(variable), (variable, variable.numpy()))
            value[first_row:first_row + rows] = values
        for variable, value in by_variable.values():
            variable.assign(value)
        return {'base_model': self.base_model, 'warm': True, 'reason': '',
                'tables': self.tables,
                'variables_copied': [target.name for _, target in self.copies],
                'variables_fresh': self.fresh, 'optimizer': OPTIMIZER_NOT_CARRIED}


def _plan(model: keras.Model, settings: TrainerSettings, tf_transform_output,
          base_model: str) -> _Plan:
    """The base model's settings checked against `settings`, the model rebuilt from them and
    restored from its checkpoint, and what of it goes where in `model`; Mismatch naming what
    differs."""
    base_settings = read_base_settings(base_model)
    found = differences(base_settings, settings)
    if found:
        raise Mismatch('warm start: ' + '; '.join(found) + f' (the serving model at {base_model})')
    old_tokens = base_vocabularies(base_model, base_settings)
    base_columns = features.feature_columns(base_settings, lambda name: len(old_tokens[name]))
    # Built beside the new model, outside any distribution strategy: it is only read.
    base = build_model(base_settings, base_columns)
    restored = base.load_weights(os.path.join(base_model, 'variables', 'variables'))
    # The SavedModel also holds what the export attached (the Transform layer, the signatures'
    # models, the optimizer's slots): every variable of the rebuilt model must be among it.
    restored.expect_partial()
    restored.assert_existing_objects_matched()

    plan = _Plan(base_model)
    theirs, ours = _weighted_layers(base), _weighted_layers(model)
    missing = sorted(set(ours) - set(theirs))
    extra = sorted(set(theirs) - set(ours))
    for name in missing:
        if name != 'task_uncertainty':  # loss weighting is a training setting
            raise Mismatch(f'warm start: the serving model has no layer {name!r}, this config '
                           f'does (the serving model at {base_model})')
        plan.fresh.extend(variable.name for variable in ours[name].weights)
    for name in extra:
        if name != 'task_uncertainty':
            raise Mismatch(f'warm start: the serving model has a layer {name!r}, this config '
                           f'does not (the serving model at {base_model})')
    for name, layer in ours.items():
        if name not in theirs:
            continue
        source = theirs[name]
        if type(source) is not type(layer):
            raise Mismatch(f'warm start: the serving model\'s layer {name!r} is a '
                           f'{type(source).__name__}, this config\'s a {type(layer).__name__} '
                           f'(the serving model at {base_model})')
        if isinstance(layer, SparseEmbeddings):
            _plan_tables(plan, source, layer, base_settings, settings, old_tokens,
                         tf_transform_output)
            continue
        shapes = [(_short_name(v), tuple(v.shape)) for v in source.weights]
        if shapes != [(_short_name(v), tuple(v.shape)) for v in layer.weights]:
            raise Mismatch(f'warm start: the serving model\'s layer {name!r} has the weights '
                           f'{shapes}, this config\'s '
                           f'{[(_short_name(v), tuple(v.shape)) for v in layer.weights]} '
                           f'(the serving model at {base_model})')
        plan.copies.extend(zip(source.weights, layer.weights))
    return plan


def _plan_tables(plan: _Plan, source: SparseEmbeddings, layer: SparseEmbeddings,
                 base_settings: TrainerSettings, settings: TrainerSettings,
                 old_tokens: Mapping[str, List[bytes]], tf_transform_output):
    """Each table of `layer`, from the same table of `source`: by token, or by index."""
    theirs, ours = _tables(source), _tables(layer)
    old_ids, new_ids = _feature_ids(base_settings), _feature_ids(settings)
    old_values = [variable.numpy() for variable in source.tables]
    counts: Dict[str, Any]
    for name, (index, first_row, rows) in ours.items():
        if name not in theirs:
            raise Mismatch(f'warm start: the serving model has no embedding table {name!r}, '
                           f'this config has (the serving model at {plan.base_model})')
        variable = layer.tables[index]
        new_block = variable.numpy()[first_row:first_row + rows]
        old_index, old_first, old_rows = theirs[name]
        old_block = old_values[old_index][old_first:old_first + old_rows]
        old, new = old_ids[name], new_ids[name]
        if old.vocabulary is not None and new.vocabulary is not None:
            new_tokens = read_vocabulary(
                tf_transform_output.vocabulary_file_by_name(new.vocabulary.name))
            values, counts = carry_rows(old_block, old_tokens[old.vocabulary.name],
                                        old.vocabulary.num_oov_buckets, new_block, new_tokens,
                                        new.vocabulary.num_oov_buckets)
        elif old.vocabulary is None and new.vocabulary is None:
            values, counts = carry_buckets(old_block, new_block)
        else:  # between a vocabulary and hashing: no row means what it meant
            values, counts = np.array(new_block, copy=True), {
                'by': 'index', 'carried': 0, 'new': rows, 'dropped': old_rows, 'oov_copied': 0,
                'oov_fresh': 0}
        plan.blocks.append((variable, first_row, rows, values))
        plan.tables[name] = counts


def _check_rows(which: str, table: np.ndarray, rows: int):
    if len(table) != rows:
        raise ValueError(f'warm start: the {which} table has {len(table)} rows, its vocabulary '
                         f'and OOV buckets {rows}')
