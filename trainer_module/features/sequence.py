"""List features (DeepCTR's VarLenSparseFeat): several values per row, such as a behaviour history.

A CSV cell holds the values with a `separator` between them ('c12|c45|c45|c18'): ExampleGen writes
them as one multi-valued tf.Example feature (so TFDV counts values per row, and drift and slices
see each value), the raw serving signature takes the same delimited string, and Transform keeps the
last `max_length` values (the most recent, as logs append), each an id, left-aligned and padded with
0, with the list's length beside it (`length_name`). The model embeds the ids and pools them by its
`combiner` ('mean', 'sum', 'max', or 'attention': each value weighed by its match with the `query`
feature's embedding, as in DIN), masked by the length: an empty list is allowed and pools to zeros.

Ids come from a vocabulary of the list's own values (bounded as a categorical feature's), or, with
`embedding_name`, from another categorical feature's: a history of item ids looks its values up in
the `item_id` vocabulary, whose counts then include the history's values, and shares its embedding
table (DeepCTR's `embedding_name`).

With `match`, Transform also counts how often the row's value of a categorical feature (the target
item, its category) occurs among the kept values, and how recently: two numbers the model takes as
dense inputs (`match_names`). Pooling blurs that match, which in click logs carries much of the
signal (a user clicks what they clicked before), and an MLP learns the equality of two embeddings
slowly; the exact count, on the raw values before any vocabulary, is cheap and needs nothing to
learn (docs/performance.md, click logs). It is computed on the values as they are, so two values
outside the vocabulary match only when they are the same value.
"""

import dataclasses
from typing import Any, Mapping, Optional, Sequence, Tuple

from trainer_module.features.categorical import Categorical, SparseFeature
from trainer_module.features.kind import CSV_RESERVED, FeatureKind, Ids, positive_int

COMBINERS = ('mean', 'sum', 'max', 'attention')
DEFAULT_SEPARATOR = '|'
# A feature's embedding dimension when it names neither one nor a table to share.
DEFAULT_EMBEDDING_DIM: int = SparseFeature('').embedding_dim
# The draft takes a text column for a list when at least this share of its non-empty cells hold
# the default separator...
LIST_SHARE = 0.3
# ... proposes to keep this quantile of the list lengths, at most DRAFT_MAX_LENGTH values...
LENGTH_QUANTILE = 0.95
DRAFT_MAX_LENGTH = 50
# ... and to share another column's vocabulary and table when that column holds at least this
# share of the list's values.
SHARED_SHARE = 0.5


def length_name(name: str) -> str:
    """The transformed feature (and model input) holding the length of list feature `name`."""
    return f'{name}_length'


def match_names(name: str) -> Tuple[str, str]:
    """The transformed features (and model inputs) of list feature `name`'s match with its `match`
    feature: log(1 + the number of kept values equal to it), and 1 / (1 + k) for the most recent
    such value, k values before the last (0 where none is)."""
    return f'{name}_matches', f'{name}_match_recency'


@dataclasses.dataclass(frozen=True)
class SequenceFeature:
    """A list column: its last `max_length` values embedded and pooled by `combiner`.

    `separator`: between the values of a cell. `embedding_name`: a categorical feature whose
    vocabulary and embedding the values share (then the vocabulary settings below are that
    feature's, and `embedding_dim` is its dimension or left out). Otherwise the list has its own
    vocabulary, bounded by `top_k`, `min_frequency` and `num_oov_buckets`, or `hash_buckets`, as a
    categorical feature's. `query`: the categorical feature the 'attention' combiner matches each
    value against (the target item or its category), of the same embedding dimension. `match`: a
    categorical feature whose value is counted among the list's (`match_names`).
    """
    name: str
    max_length: int = 20
    combiner: str = 'mean'
    separator: str = DEFAULT_SEPARATOR
    embedding_name: Optional[str] = None
    embedding_dim: Optional[int] = None
    top_k: Optional[int] = None
    min_frequency: int = 1
    num_oov_buckets: Optional[int] = None
    hash_buckets: Optional[int] = None
    query: Optional[str] = None
    match: Optional[str] = None


def _own_ids(feature: SequenceFeature) -> SparseFeature:
    """The categorical feature whose ids a list without a shared table has."""
    return SparseFeature(feature.name, feature.embedding_dim or DEFAULT_EMBEDDING_DIM,
                         feature.top_k, feature.min_frequency, feature.num_oov_buckets,
                         feature.hash_buckets)


def dimension(feature: SequenceFeature, features: Mapping[str, Any]) -> int:
    """The list's embedding dimension: its table's."""
    if feature.embedding_name is not None:
        return features[feature.embedding_name].embedding_dim
    return feature.embedding_dim or DEFAULT_EMBEDDING_DIM


class List(FeatureKind):
    """A list feature: its last values as ids, embedded and pooled."""
    section = 'sequence_features'
    role = 'sequence'
    config = SequenceFeature
    _categorical = Categorical()

    def check(self, feature: SequenceFeature, where: str, features: Mapping[str, Any]) -> None:
        """Its length, combiner and separator, the table it shares (or its own vocabulary's
        settings), its query."""
        positive_int(feature.max_length, f'{where}.max_length')
        if feature.combiner not in COMBINERS:
            raise ValueError(f'{where}.combiner: {feature.combiner!r} is not one of {COMBINERS}')
        if not isinstance(feature.separator, str) or not feature.separator:
            raise ValueError(f'{where}.separator: must be a non-empty string, got '
                             f'{feature.separator!r}')
        reserved = [c for c in CSV_RESERVED if c in feature.separator]
        if reserved:
            raise ValueError(f'{where}.separator: {feature.separator!r} holds {reserved[0]!r}, '
                             "which delimits or quotes the CSV's fields")
        if feature.embedding_name is not None:
            shared = features.get(feature.embedding_name)
            if not isinstance(shared, SparseFeature):
                raise ValueError(f'{where}.embedding_name: {feature.embedding_name!r} is not a '
                                 'categorical feature (sparse_features) to share a table with')
            own = [setting for setting, unset in (('top_k', None), ('min_frequency', 1),
                                                  ('num_oov_buckets', None),
                                                  ('hash_buckets', None))
                   if getattr(feature, setting) != unset]
            if own:
                raise ValueError(f'{where}.{own[0]}: the list shares the vocabulary of '
                                 f'{feature.embedding_name!r}; set it there')
            if feature.embedding_dim not in (None, shared.embedding_dim):
                raise ValueError(f'{where}.embedding_dim: {feature.embedding_dim} where the shared '
                                 f'table {feature.embedding_name!r} has {shared.embedding_dim}')
        else:
            if feature.embedding_dim is not None:
                positive_int(feature.embedding_dim, f'{where}.embedding_dim')
            self._categorical.check(_own_ids(feature), where, features)
        if (feature.combiner == 'attention') != (feature.query is not None):
            raise ValueError(f'{where}.query: the attention combiner needs a query feature, and '
                             'only it reads one' if feature.query is not None else
                             f'{where}.query: the attention combiner needs a query (a '
                             'categorical feature such as the target item)')
        if feature.query is not None:
            query = features.get(feature.query)
            if not isinstance(query, SparseFeature):
                raise ValueError(f'{where}.query: {feature.query!r} is not a categorical feature')
            if query.embedding_dim != dimension(feature, features):
                raise ValueError(f'{where}.query: {feature.query!r} has embedding_dim '
                                 f'{query.embedding_dim}, the list '
                                 f'{dimension(feature, features)}')
        if feature.match is not None and not isinstance(features.get(feature.match), SparseFeature):
            raise ValueError(f'{where}.match: {feature.match!r} is not a categorical feature '
                             '(sparse_features) whose value to look for in the list')

    def outputs(self, feature: SequenceFeature):
        """Its ids and its length, and its match's two numbers where it has one."""
        matches = match_names(feature.name) if feature.match is not None else ()
        return (feature.name, length_name(feature.name), *matches)

    def separator(self, feature: SequenceFeature) -> str:
        """Its separator."""
        return feature.separator

    def _owner(self, feature: SequenceFeature) -> str:
        return feature.embedding_name or feature.name

    def ids(self, feature: SequenceFeature, features, default_oov_buckets: int) -> Ids:
        """The shared feature's ids, or those of its own vocabulary or hash buckets."""
        if feature.embedding_name is not None:
            return self._categorical.ids(features[feature.embedding_name], features,
                                         default_oov_buckets)
        return self._categorical.ids(_own_ids(feature), features, default_oov_buckets)

    def values(self, feature: SequenceFeature, inputs):
        """Its [batch, (values)] ragged strings, each row cut to its last `max_length`."""
        from trainer_module.preprocessing import list_values
        return list_values(inputs[feature.name], feature.max_length)

    def tokens(self, feature: SequenceFeature, values):
        """Its kept values, counted into the vocabulary it owns or shares."""
        return {self._owner(feature): values.flat_values}

    def transform(self, features: Sequence[SequenceFeature], values, ids):
        """Each list's [batch, max_length] ids, padded with 0, and its [batch] length."""
        import tensorflow as tf
        outputs = {}
        for feature in features:
            kept = values[feature.name]
            ragged = kept.with_flat_values(ids(self._owner(feature), kept.flat_values))
            outputs[feature.name] = ragged.to_tensor(0, shape=[None, feature.max_length])
            outputs[length_name(feature.name)] = tf.cast(ragged.row_lengths(), tf.int64)
            if feature.match is not None:
                outputs.update(zip(match_names(feature.name), _match(kept, values[feature.match])))
        return outputs

    def model_columns(self, feature: SequenceFeature, features, sizes):
        """A VarLenSparseFeat masked by the length, over the shared or its own table."""
        from trainer_module.feature_column import DenseFeat, SparseFeat, VarLenSparseFeat
        owner = self._owner(feature)
        return [VarLenSparseFeat(
            SparseFeat(feature.name, vocabulary_size=sizes[owner],
                       embedding_dim=dimension(feature, features), embedding_name=owner),
            maxlen=feature.max_length, combiner=feature.combiner,
            length_name=length_name(feature.name), query_name=feature.query)] + (
                [DenseFeat(name) for name in match_names(feature.name)]
                if feature.match is not None else [])

    def draft(self, name: str, column, frame):
        """A text column with separators in many cells; sharing the table of a column holding most
        of its values."""
        import pandas as pd
        if pd.api.types.is_numeric_dtype(column):
            return None
        cells = column.dropna().astype(str)
        cells = cells[cells != '']
        if not len(cells) or cells.str.contains(DEFAULT_SEPARATOR, regex=False).mean() < LIST_SHARE:
            return None
        lists = cells.str.split(DEFAULT_SEPARATOR, regex=False)
        lengths = lists.map(len)
        max_length = int(min(DRAFT_MAX_LENGTH, max(1, lengths.quantile(LENGTH_QUANTILE))))
        values = pd.Series([value for values in lists for value in values])
        shared, share = None, 0.0
        for other in frame.columns:
            if other == name or pd.api.types.is_float_dtype(frame[other]):
                continue
            known = set(frame[other].dropna().astype(str))
            covered = float(values.isin(known).mean())
            if covered >= SHARED_SHARE and covered > share:
                shared, share = other, covered
        why = (f"values separated by '{DEFAULT_SEPARATOR}' in "
               f'{cells.str.contains(DEFAULT_SEPARATOR, regex=False).mean():.0%} of its cells, '
               f'{lengths.quantile(LENGTH_QUANTILE):.0f} values or fewer in '
               f'{LENGTH_QUANTILE:.0%}: the last {max_length} kept, mean-pooled')
        if shared is not None:
            why += (f"; {share:.0%} of its values are {shared!r} values: it shares that table, "
                    f"and counts the row's {shared!r} among its values (match)")
        return SequenceFeature(name, max_length=max_length, embedding_name=shared,
                               match=shared), why


def _match(kept, targets):
    """([batch, (values)] ragged strings, [batch] strings, '' where missing) -> ([batch] log(1 +
    how many values equal the row's target), [batch] 1 / (1 + k) for the latest equal value, k
    values before the row's last, 0 where none), float32; a missing target matches nothing."""
    import tensorflow as tf
    rows = kept.value_rowids()
    row_target = tf.gather(targets, rows)
    hit = tf.cast(tf.logical_and(tf.equal(kept.flat_values, row_target), row_target != ''),
                  tf.float32)
    position = tf.range(tf.size(rows, out_type=rows.dtype)) - tf.gather(kept.row_starts(), rows)
    from_last = tf.gather(kept.row_lengths(), rows) - 1 - position
    recency = hit / (1.0 + tf.cast(from_last, tf.float32))
    # A row without values is an empty segment, whose max is the lowest float32.
    return (tf.math.log1p(tf.math.unsorted_segment_sum(hit, rows, kept.nrows())),
            tf.maximum(tf.math.unsorted_segment_max(recency, rows, kept.nrows()), 0.0))


KIND = List()
