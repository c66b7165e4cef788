"""Categorical features (DeepCTR's SparseFeat): one value per row, an id, an embedding.

The id comes from a vocabulary Transform counts over the training split (the tokens by decreasing
count), bounded by `top_k` and `min_frequency`, with `num_oov_buckets` ids after it that a value
outside it is hashed into; or, with `hash_buckets`, from no vocabulary at all: the value's
FarmHash modulo the bucket count, in the Transform graph, so serving hashes as training did. A
bounded vocabulary keeps a column of millions of ids, most seen once, to the ones worth a row of
their own; hashing keeps no vocabulary at all, at the cost of collisions.
"""

import dataclasses
import re
from typing import Any, Mapping, Optional, Sequence

from trainer_module.features.kind import FeatureKind, Ids, Vocabulary, positive_int

# The draft proposes bounds for a column with more distinct values than this in its sample...
MANY_VALUES = 1000
# ... of which at least this share is seen once.
RARE_SHARE = 0.5
# The OOV buckets the draft proposes with a bound: unseen ids spread over some rows, not one.
DRAFT_OOV_BUCKETS = 10
# An integer column with at most this many values (or named like an id) is categorical.
MAX_CATEGORICAL_INTEGERS = 50
ID_NAME = re.compile(r'(^|_)id$', re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class SparseFeature:
    """A categorical column: a Transform vocabulary (or hash buckets), then an embedding.

    `top_k`: keep the most frequent values only (None: all); `min_frequency`: keep only values seen
    at least this often in the training split; `num_oov_buckets`: ids for the values outside the
    vocabulary (None: the config's `num_oov_buckets`); `hash_buckets`: no vocabulary, each value
    hashed into this many ids (then `top_k`, `min_frequency` and `num_oov_buckets` do not apply).
    """
    name: str
    embedding_dim: int = 4
    top_k: Optional[int] = None
    min_frequency: int = 1
    num_oov_buckets: Optional[int] = None
    hash_buckets: Optional[int] = None


class Categorical(FeatureKind):
    """A categorical feature: a vocabulary (bounded, or none when hashed), an id, an embedding."""
    section = 'sparse_features'
    role = 'sparse'
    config = SparseFeature

    def check(self, feature: SparseFeature, where: str, features: Mapping[str, Any]) -> None:
        """Whole-number settings, and no vocabulary bound on a hashed feature."""
        positive_int(feature.embedding_dim, f'{where}.embedding_dim')
        positive_int(feature.min_frequency, f'{where}.min_frequency')
        for setting in ('top_k', 'num_oov_buckets', 'hash_buckets'):
            if getattr(feature, setting) is not None:
                positive_int(getattr(feature, setting), f'{where}.{setting}')
        if feature.hash_buckets is not None:
            bounds = [setting for setting, unset in (('top_k', None), ('min_frequency', 1),
                                                     ('num_oov_buckets', None))
                      if getattr(feature, setting) != unset]
            if bounds:
                raise ValueError(f'{where}.{bounds[0]}: a hashed feature (hash_buckets) has no '
                                 'vocabulary to bound')

    def ids(self, feature: SparseFeature, features, default_oov_buckets: int) -> Ids:
        """Its hash buckets, or its own vocabulary (the config's OOV buckets unless it sets them)."""
        if feature.hash_buckets is not None:
            return Ids(hash_buckets=feature.hash_buckets)
        oov = feature.num_oov_buckets if feature.num_oov_buckets is not None else \
            default_oov_buckets
        return Ids(vocabulary=Vocabulary(feature.name, feature.top_k, feature.min_frequency, oov))

    def values(self, feature: SparseFeature, inputs):
        """Its [batch] strings, '' where missing."""
        from trainer_module.preprocessing import categorical_values
        return categorical_values(inputs[feature.name])

    def tokens(self, feature: SparseFeature, values):
        """Its values, counted into its own vocabulary."""
        return {feature.name: values}

    def transform(self, features: Sequence[SparseFeature], values, ids):
        """Each feature's [batch] ids."""
        return {feature.name: ids(feature.name, values[feature.name]) for feature in features}

    def model_columns(self, feature: SparseFeature, features, sizes):
        """A SparseFeat over its ids."""
        from trainer_module.feature_column import SparseFeat
        return [SparseFeat(feature.name, vocabulary_size=sizes[feature.name],
                           embedding_dim=feature.embedding_dim)]

    def draft(self, name: str, column, frame):
        """Text, integer ids or few integers: bounded when most of many values are seen once."""
        import pandas as pd
        if pd.api.types.is_numeric_dtype(column) and not (
                pd.api.types.is_integer_dtype(column)
                and (ID_NAME.search(name) or column.nunique() <= MAX_CATEGORICAL_INTEGERS)):
            return None
        counts = column.dropna().astype(str).value_counts()
        once = float((counts == 1).mean()) if len(counts) else 0.0
        if len(counts) > MANY_VALUES and once >= RARE_SHARE:
            return (SparseFeature(name, embedding_dim=8, min_frequency=2,
                                  num_oov_buckets=DRAFT_OOV_BUCKETS),
                    f'{len(counts)} distinct values in the sample, {once:.0%} of them seen once: '
                    f'a vocabulary of the values seen twice or more, {DRAFT_OOV_BUCKETS} OOV '
                    'buckets for the rest')
        kind = 'text' if not pd.api.types.is_numeric_dtype(column) else 'integer ids'
        return SparseFeature(name, embedding_dim=8), f'{kind}, {len(counts)} distinct values'


KIND = Categorical()
