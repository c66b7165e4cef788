"""Feature crosses (TF's `crossed_column`, Wide&Deep's crosses): the combination of several
categorical columns' values, one id per combination, an embedding.

A cross is no column of the data: Transform computes it from the raw values of the categorical
features it names (`columns`), joined as text in their order ('45-54_X_c023', `tf.sparse.cross`'s
separator), so the CSV, the schema and the raw serving signature hold only those columns, and
the exported model computes the cross inside its Transform graph. The joined text then gets its
id as a categorical feature's value does: FarmHash modulo `hash_buckets`, or a vocabulary counted
over the training split, bounded by `top_k` and `min_frequency`, with `num_oov_buckets` after it.

A cross lets the model weigh a combination on its own (an age group's taste for a category)
where the embeddings of its parts would have to learn it through the network; a linear model
over the parts' one-hot columns cannot represent it at all.
"""

import dataclasses
from typing import Any, Mapping, Optional, Tuple

from trainer_module.features.categorical import Categorical, SparseFeature
from trainer_module.features.kind import FeatureKind, Ids

# Between the columns' values in a cross's text: `tf.sparse.cross`'s default separator.
SEPARATOR = '_X_'


@dataclasses.dataclass(frozen=True)
class CrossFeature:
    """A cross of the categorical features `columns` (two or more, by name), embedded in
    `embedding_dim`. `hash_buckets`: each combination hashed into this many ids; without it, a
    vocabulary of the combinations seen in training, bounded by `top_k`, `min_frequency` and
    `num_oov_buckets` as a categorical feature's (None: the config's)."""
    name: str
    columns: Tuple[str, ...] = ()
    embedding_dim: int = 4
    hash_buckets: Optional[int] = None
    top_k: Optional[int] = None
    min_frequency: int = 1
    num_oov_buckets: Optional[int] = None

    def __post_init__(self):
        # YAML and JSON give a list; the settings compare and hash as tuples.
        if isinstance(self.columns, list):
            object.__setattr__(self, 'columns', tuple(self.columns))


def _ids_of(feature: CrossFeature) -> SparseFeature:
    """The categorical feature whose ids the cross's text gets."""
    return SparseFeature(feature.name, feature.embedding_dim, feature.top_k,
                         feature.min_frequency, feature.num_oov_buckets, feature.hash_buckets)


class Cross(FeatureKind):
    """A cross of categorical features: their joined values, an id, an embedding."""
    section = 'cross_features'
    role = 'cross'
    config = CrossFeature
    column = False
    _categorical = Categorical()

    def check(self, feature: CrossFeature, where: str, features: Mapping[str, Any]) -> None:
        """Two or more distinct categorical features to cross, and its ids' settings as a
        categorical feature's."""
        columns = feature.columns
        if not isinstance(columns, tuple) or not all(isinstance(c, str) for c in columns):
            raise ValueError(f'{where}.columns: expected a list of categorical features '
                             f'(sparse_features) by name, got {columns!r}')
        if len(columns) < 2:
            raise ValueError(f'{where}.columns: a cross combines at least 2 categorical features, '
                             f'got {list(columns)}')
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f'{where}.columns: {repeated[0]!r} named twice')
        categorical = [name for name, other in features.items() if isinstance(other, SparseFeature)]
        for column in columns:
            if column not in features:
                raise ValueError(f'{where}.columns: {column!r} is not a feature of the config '
                                 f'(sparse_features: {categorical})')
            if not isinstance(features[column], SparseFeature):
                raise ValueError(f'{where}.columns: {column!r} is not a categorical feature '
                                 f'(sparse_features: {categorical}); a cross combines their values')
        self._categorical.check(_ids_of(feature), where, features)

    def ids(self, feature: CrossFeature, features, default_oov_buckets: int) -> Ids:
        """Its hash buckets, or its own vocabulary, as a categorical feature's."""
        return self._categorical.ids(_ids_of(feature), features, default_oov_buckets)

    def values(self, feature: CrossFeature, inputs):
        """Its [batch] strings: each column's value as a categorical feature reads it ('' where
        missing), joined by SEPARATOR in the order of `columns`."""
        import tensorflow as tf

        from trainer_module.preprocessing import categorical_values
        return tf.strings.join([categorical_values(inputs[column]) for column in feature.columns],
                               separator=SEPARATOR)

    # Once joined, its values count, become ids and are embedded as a categorical feature's
    # (those methods read only `name` and `embedding_dim`, which a cross has alike).
    tokens = Categorical.tokens
    transform = Categorical.transform
    model_columns = Categorical.model_columns


KIND = Cross()
