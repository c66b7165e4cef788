"""Numeric features (DeepCTR's DenseFeat of dimension 1): a number per row, scaled to a z-score,
or to [0, 1] by the training minimum and maximum (`scaling: min_max`, as scikit-learn's
MinMaxScaler, which DeepCTR's examples use: a notebook that scales so moves in with the same
inputs).

Transform scales every numeric feature in one pass (`preprocessing.z_scores`,
`preprocessing.min_max_scaled`); a missing or NaN value becomes the feature's training mean (after
`log1p` where the feature has it), so 0 after z-scaling.
"""

import dataclasses
from typing import Any, Dict, Sequence

from trainer_module.features.kind import FeatureKind

# The draft takes log(1 + x) of a column of non-negative numbers skewed more than this.
HEAVY_TAIL_SKEW = 2
SCALINGS = ('z_score', 'min_max')


@dataclasses.dataclass(frozen=True)
class DenseFeature:
    """A numeric column, scaled by Transform (DeepCTR's DenseFeat of dimension 1) to z-scores or,
    with `scaling: min_max`, to [0, 1] of its training range; `log1p` first takes log(1 + x) of
    heavy-tailed values such as prices and counts."""
    name: str
    log1p: bool = False
    scaling: str = 'z_score'


class Numeric(FeatureKind):
    """A numeric feature: a z-score, after log1p where it says so."""
    section = 'dense_features'
    role = 'dense'
    config = DenseFeature

    def check(self, feature: DenseFeature, where, features) -> None:
        """`log1p` is a bool, `scaling` one of SCALINGS."""
        if not isinstance(feature.log1p, bool):
            raise ValueError(f'{where}.log1p: expected true or false, got {feature.log1p!r}')
        if feature.scaling not in SCALINGS:
            raise ValueError(f'{where}.scaling: {feature.scaling!r} is not one of {SCALINGS}')

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
        """Every numeric feature scaled, each scaling's features in one pass."""
        import tensorflow as tf

        from trainer_module.preprocessing import min_max_scaled, z_scores
        outputs: Dict[str, Any] = {}
        for scaling, scale in (('z_score', z_scores), ('min_max', min_max_scaled)):
            scaled_features = [feature for feature in features if feature.scaling == scaling]
            if scaled_features:
                scaled = scale(tf.stack([values[feature.name] for feature in scaled_features],
                                        axis=1))
                outputs.update((feature.name, scaled[:, i])
                               for i, feature in enumerate(scaled_features))
        return outputs

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
