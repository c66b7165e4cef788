"""DeepCTR's feature columns (`deepctr.feature_column`), so that DeepCTR code moves by one import.

A `SparseFeat` is a categorical input of integer ids in [0, vocabulary_size) looked up in an embedding;
a `DenseFeat` is a float input of `dimension` values fed to the DNNs as they are.
"""

import dataclasses
from typing import List, Optional, Union

import tensorflow_transform as tft


@dataclasses.dataclass(frozen=True)
class SparseFeat:
    name: str
    vocabulary_size: int
    embedding_dim: int = 4
    dtype: str = 'int32'
    embedding_name: Optional[str] = None
    trainable: bool = True

    def __post_init__(self):
        if self.embedding_dim == 'auto':
            object.__setattr__(self, 'embedding_dim', 6 * int(pow(self.vocabulary_size, 0.25)))
        if self.embedding_name is None:
            object.__setattr__(self, 'embedding_name', self.name)


@dataclasses.dataclass(frozen=True)
class DenseFeat:
    name: str
    dimension: int = 1
    dtype: str = 'float32'


FeatureColumn = Union[SparseFeat, DenseFeat]


def feature_columns_from_transform(settings, tf_transform_output: tft.TFTransformOutput
                                   ) -> List[FeatureColumn]:
    """The feature columns of `settings` (`TrainerSettings`), each embedding sized from the Transform
    vocabulary.

    A sparse feature's ids run over its vocabulary plus `num_oov_buckets` ids for unseen values.
    """
    columns: List[FeatureColumn] = [
        SparseFeat(feature.name,
                   vocabulary_size=(tf_transform_output.vocabulary_size_by_name(feature.name)
                                    + settings.num_oov_buckets),
                   embedding_dim=feature.embedding_dim)
        for feature in settings.sparse_features
    ]
    columns += [DenseFeat(name) for name in settings.dense_features]
    return columns
