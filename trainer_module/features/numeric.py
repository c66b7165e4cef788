"""Numeric features (DeepCTR's DenseFeat of dimension 1): a number per row, scaled to a z-score.

Transform scales every numeric feature in one pass (`preprocessing.z_scores`); a missing or NaN
value becomes the feature's training mean (after `log1p` where the feature has it), so 0 after
scaling.
"""

import dataclasses
from typing import Sequence

from trainer_module.features.kind import FeatureKind

# The draft takes log(1 + x) of a column of non-negative numbers skewed more than this.
HEAVY_TAIL_SKEW = 2


@dataclasses.dataclass(frozen=True)
class DenseFeature:
    """A numeric column, scaled to z-scores by Transform (DeepCTR's DenseFeat of dimension 1);
    `log1p` first takes log(1 + x) of heavy-tailed values such as prices and counts."""
    name: str
    log1p: bool = False


class Numeric(FeatureKind):
    """A numeric feature: a z-score, after log1p where it says so."""
    section = 'dense_features'
    role = 'dense'
    config = DenseFeature

    def check(self, feature: DenseFeature, where, features) -> None:
        """`log1p` is a bool."""
        if not isinstance(feature.log1p, bool):
            raise ValueError(f'{where}.log1p: expected true or false, got {feature.log1p!r}')

    def values(self, feature: DenseFeature, inputs):
        """Its [batch] float64 numbers, NaN where missing, after log1p where it says so."""
        import tensorflow as tf

        from trainer_module.preprocessing import numeric_values
        values = numeric_values(inputs[feature.name], tf.float64)
        if feature.log1p:
            # Negative values count as 0; NaN (missing) stays NaN.
            values = tf.math.log1p(tf.where(values < 0, tf.zeros_like(values), values))
        return values

    def transform(self, features: Sequence[DenseFeature], values, ids):
        """Every numeric feature's z-scores, scaled in one pass."""
        import tensorflow as tf

        from trainer_module.preprocessing import z_scores
        if not features:
            return {}
        scaled = z_scores(tf.stack([values[feature.name] for feature in features], axis=1))
        return {feature.name: scaled[:, i] for i, feature in enumerate(features)}

    def model_columns(self, feature: DenseFeature, features, sizes):
        """A DenseFeat of dimension 1."""
        from trainer_module.feature_column import DenseFeat
        return [DenseFeat(feature.name)]

    def draft(self, name, column, frame):
        """Any number the kinds before did not take; log1p where heavy-tailed."""
        import pandas as pd
        if not pd.api.types.is_numeric_dtype(column):
            return None
        values = column.dropna()
        heavy = bool(len(values) and values.min() >= 0 and values.skew() > HEAVY_TAIL_SKEW)
        return (DenseFeature(name, log1p=heavy),
                'numbers' + (f', skewed beyond {HEAVY_TAIL_SKEW}: log1p' if heavy else ''))


KIND = Numeric()
