"""DeepCTR's feature columns (`deepctr.feature_column`, 0.9.4), so that DeepCTR code moves by one import.

A `SparseFeat` is a categorical input of integer ids in [0, vocabulary_size) looked up in an embedding;
a `DenseFeat` is a float input of `dimension` values fed to the DNNs as they are. Both are DeepCTR's
namedtuples with its fields in its positional order; the arguments our models cannot honour raise a
`ValueError` that says what to do instead, rather than being ignored.
"""

from collections import namedtuple
from typing import List, Sequence, Union

DEFAULT_GROUP_NAME = 'default_group'


def _unsupported(feature, argument, instead):
    return ValueError(f'{feature}: {argument} is not supported by trainer_module; {instead}')


class SparseFeat(namedtuple('SparseFeat', ['name', 'vocabulary_size', 'embedding_dim', 'use_hash',
                                           'vocabulary_path', 'dtype', 'embeddings_initializer',
                                           'embedding_name', 'group_name', 'trainable'])):
    """DeepCTR's SparseFeat. `embedding_dim='auto'` is 6 * vocabulary_size ** 0.25, as in DeepCTR;
    features of the same `embedding_name` share one table; `group_name` orders the embeddings in
    the DNN input as DeepCTR does (grouped, groups in order of first use). The embeddings start
    from DeepCTR's default initializer, RandomNormal(stddev=0.0001, seed=2020)."""
    __slots__ = ()

    def __new__(cls, name, vocabulary_size, embedding_dim=4, use_hash=False, vocabulary_path=None,
                dtype='int32', embeddings_initializer=None, embedding_name=None,
                group_name=DEFAULT_GROUP_NAME, trainable=True):
        """DeepCTR's arguments -> the feature, `embedding_dim='auto'` and `embedding_name=None`
        resolved; a ValueError for `use_hash`, `vocabulary_path` or `embeddings_initializer`."""
        feature = f'SparseFeat {name!r}'
        if use_hash:
            raise _unsupported(feature, 'use_hash=True', (
                'give ids in [0, vocabulary_size): the pipeline maps strings to ids with its '
                'Transform vocabulary (trainer_module/preprocessing.py); in a script, encode the '
                'column first (e.g. sklearn LabelEncoder)'))
        if vocabulary_path is not None:
            raise _unsupported(feature, 'vocabulary_path', (
                'the pipeline computes each vocabulary in Transform; in a script, map values to '
                'ids in [0, vocabulary_size) before the model'))
        if embeddings_initializer is not None:
            raise _unsupported(feature, 'embeddings_initializer', (
                "leave it None: embeddings start from DeepCTR's default, "
                'RandomNormal(stddev=0.0001, seed=2020)'))
        if embedding_dim == 'auto':
            embedding_dim = 6 * int(pow(vocabulary_size, 0.25))
        if embedding_name is None:
            embedding_name = name
        return super().__new__(cls, name, vocabulary_size, embedding_dim, use_hash,
                               vocabulary_path, dtype, embeddings_initializer, embedding_name,
                               group_name, trainable)

    def __hash__(self):  # as DeepCTR's: by name
        return self.name.__hash__()


class DenseFeat(namedtuple('DenseFeat', ['name', 'dimension', 'dtype', 'transform_fn'])):
    """DeepCTR's DenseFeat: `dimension` float values fed to the DNNs as they are."""
    __slots__ = ()

    def __new__(cls, name, dimension=1, dtype='float32', transform_fn=None):
        """DeepCTR's arguments -> the feature; a ValueError for a `transform_fn`."""
        if transform_fn is not None:
            raise _unsupported(f'DenseFeat {name!r}', 'transform_fn', (
                'transform the values before the model: the pipeline scales dense features in '
                'Transform (trainer_module/preprocessing.py); in a script, transform the column '
                'before fit'))
        return super().__new__(cls, name, dimension, dtype, transform_fn)

    def __hash__(self):
        return self.name.__hash__()


class VarLenSparseFeat:
    """DeepCTR's variable-length (sequence) feature, which our models do not support: building
    one raises a ValueError that says so. Defined so that DeepCTR code importing it still
    imports."""

    def __init__(self, sparsefeat, maxlen, *args, **kwargs):
        name = getattr(sparsefeat, 'name', sparsefeat)
        raise ValueError(
            f'VarLenSparseFeat {name!r}: variable-length (sequence) features are not supported by '
            "trainer_module's models; give each position its own SparseFeat, or pool the sequence "
            'into a fixed-size DenseFeat before the model')


FeatureColumn = Union[SparseFeat, DenseFeat]


def get_feature_names(feature_columns: Sequence[FeatureColumn]) -> List[str]:
    """The model's input names, in order: the keys of the dict `fit` and `predict` take, as
    DeepCTR's `get_feature_names`."""
    names = []
    for column in feature_columns:
        if not isinstance(column, (SparseFeat, DenseFeat)):
            raise ValueError(f'unknown feature column {column!r}')
        if column.name not in names:
            names.append(column.name)
    return names


def feature_columns_from_transform(settings, tf_transform_output) -> List[FeatureColumn]:
    """The feature columns of `settings` (`TrainerSettings`), each embedding sized from the
    Transform vocabulary (a `tft.TFTransformOutput`).

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
