"""DeepCTR's feature columns (`deepctr.feature_column`, 0.9.4), so that DeepCTR code moves by one import.

A `SparseFeat` is a categorical input looked up in an embedding: integer ids in [0, vocabulary_size),
or, with `use_hash=True`, raw values (strings or numbers) that the model hashes into that range as
DeepCTR's `Hash` layer does. A `VarLenSparseFeat` is a sequence of such ids, [batch, maxlen], pooled
into one embedding (`combiner`). A `DenseFeat` is a float input of `dimension` values fed to the DNNs
as they are. All three are DeepCTR's namedtuples with its fields in its positional order; the
arguments our models cannot honour raise a `ValueError` that says what to do instead, rather than
being ignored.
"""

import numbers
from collections import namedtuple
from typing import List, Sequence, Union

DEFAULT_GROUP_NAME = 'default_group'
# The dtype of a VarLenSparseFeat's length input (`length_name`), as DeepCTR's build_input_features
# makes it; trainer_module/data.py feeds the pipeline's lengths in it.
LENGTH_DTYPE = 'int32'
# VarLenSparseFeat's combiners: DeepCTR's SequencePoolingLayer modes, then our DIN attention.
POOLING_COMBINERS = ('sum', 'mean', 'max')
ATTENTION_COMBINER = 'attention'


def _unsupported(feature, argument, instead):
    return ValueError(f'{feature}: {argument} is not supported by trainer_module; {instead}')


class SparseFeat(namedtuple('SparseFeat', ['name', 'vocabulary_size', 'embedding_dim', 'use_hash',
                                           'vocabulary_path', 'dtype', 'embeddings_initializer',
                                           'embedding_name', 'group_name', 'trainable'])):
    """DeepCTR's SparseFeat. `embedding_dim='auto'` is 6 * vocabulary_size ** 0.25, as in DeepCTR;
    features of the same `embedding_name` share one table; `group_name` orders the embeddings in
    the DNN input as DeepCTR does (grouped, groups in order of first use). The embeddings start
    from DeepCTR's default initializer, RandomNormal(stddev=0.0001, seed=2020).

    With `use_hash=True` the input is the raw value in `dtype` ('string', 'int32', 'int64', ...):
    the model hashes its text (`tf.strings.as_string` of a number) into [0, vocabulary_size) with
    FarmHash, as DeepCTR's `Hash` layer does, so the same values get the same ids as under DeepCTR.
    A table several features name takes the size, dimension and trainability of the last
    `VarLenSparseFeat` that names it, else of the last `SparseFeat`: DeepCTR keeps one `Embedding`
    layer per name, the last one it made.
    """
    __slots__ = ()

    def __new__(cls, name, vocabulary_size, embedding_dim=4, use_hash=False, vocabulary_path=None,
                dtype='int32', embeddings_initializer=None, embedding_name=None,
                group_name=DEFAULT_GROUP_NAME, trainable=True):
        """DeepCTR's arguments -> the feature, `embedding_dim='auto'` and `embedding_name=None`
        resolved; a ValueError for `vocabulary_path`, `embeddings_initializer`, or string values
        without `use_hash`."""
        feature = f'SparseFeat {name!r}'
        if vocabulary_path is not None:
            raise _unsupported(feature, 'vocabulary_path', (
                'the pipeline computes each vocabulary in Transform; in a script, map values to '
                'ids in [0, vocabulary_size) before the model, or hash them (use_hash=True)'))
        if embeddings_initializer is not None:
            raise _unsupported(feature, 'embeddings_initializer', (
                "leave it None: embeddings start from DeepCTR's default, "
                'RandomNormal(stddev=0.0001, seed=2020)'))
        if dtype == 'string' and not use_hash:
            raise ValueError(f"{feature}: dtype='string' needs use_hash=True (an embedding looks up "
                             'integer ids; the model hashes strings into them)')
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


class VarLenSparseFeat(namedtuple('VarLenSparseFeat', ['sparsefeat', 'maxlen', 'combiner',
                                                       'length_name', 'weight_name', 'weight_norm',
                                                       'query_name'])):
    """DeepCTR's VarLenSparseFeat: a sequence of `maxlen` ids of the `SparseFeat` `sparsefeat`
    (whose name, vocabulary, dimension, hashing, dtype, table and group it takes), pooled into one
    embedding of the DNN input.

    Which positions count: with `length_name`, the first `length` ones, read from an input of that
    name, [batch, 1] int32, as DeepCTR's; without it, those whose id is not 0 (DeepCTR's
    `mask_zero`: id 0 is padding, its embedding row never pooled). With `use_hash`, values hash into
    [1, vocabulary_size) and the text '0' (the value 0) to the padding id 0, as DeepCTR's `Hash`
    with `mask_zero=True`. With `weight_name`, an input of that name, [batch, maxlen, 1] float32,
    weighs each position before pooling as DeepCTR's `WeightedSequenceLayer`: softmax over the
    counted positions when `weight_norm`, else as given.

    `combiner`: DeepCTR's 'sum', 'mean' (of the counted positions; 0 for none, as DeepCTR's) and
    'max' (per dimension). Where no position counts, 'max' gives 0 where DeepCTR gives about -1e9
    (the masked positions' offset): a row with no history adds nothing to the DNN input rather than
    a value a thousand million times a trained one. A length beyond `maxlen` counts `maxlen`
    positions (DeepCTR's 'mean' divides the sum of `maxlen` positions by the length given).

    Beyond DeepCTR, `combiner='attention'` with `query_name` (our field, the last one, so DeepCTR's
    positional arguments keep their places): DIN's local activation unit (Zhou et al., KDD 2018).
    The embedding of the `SparseFeat` named `query_name` (one of the model's columns, of the same
    embedding dimension) is the query; an MLP over [query, key, query - key, query * key] scores
    each counted position, and the output is the score-weighted sum of the positions' embeddings.
    The scores are not normalised by a softmax, as in DIN: their sum says how much of the history
    bears on the query, which a softmax (weights summing to 1 over any history) would erase.
    """
    __slots__ = ()

    def __new__(cls, sparsefeat, maxlen, combiner='mean', length_name=None, weight_name=None,
                weight_norm=True, query_name=None):
        """DeepCTR's arguments (and our `query_name`) -> the feature; a ValueError naming the
        feature for a `sparsefeat` not ours, a `maxlen` under 1, an unknown combiner, or a
        `query_name` given without `combiner='attention'` or missing with it."""
        name = getattr(sparsefeat, 'name', sparsefeat)
        feature = f'VarLenSparseFeat {name!r}'
        if not isinstance(sparsefeat, SparseFeat):
            raise ValueError(f'{feature}: sparsefeat must be a trainer_module.feature_column.'
                             f'SparseFeat, got {sparsefeat!r}')
        if not isinstance(maxlen, numbers.Integral) or maxlen < 1:  # NumPy's integers too
            raise ValueError(f'{feature}: maxlen must be a positive integer, got {maxlen!r}')
        combiners = POOLING_COMBINERS + (ATTENTION_COMBINER,)
        if combiner not in combiners:
            raise ValueError(f'{feature}: combiner must be one of {combiners}, got {combiner!r}')
        if (combiner == ATTENTION_COMBINER) != (query_name is not None):
            raise ValueError(f"{feature}: combiner='attention' takes query_name, the SparseFeat "
                             'whose embedding is the query, and the other combiners take none')
        if combiner == ATTENTION_COMBINER and weight_name is not None:
            raise _unsupported(feature, "weight_name with combiner='attention'", (
                'the attention unit weighs the positions itself; drop weight_name, or pool the '
                "weighted sequence with 'sum' or 'mean'"))
        return super().__new__(cls, sparsefeat, int(maxlen), combiner, length_name, weight_name,
                               weight_norm, query_name)

    @property
    def name(self):
        """The sequence's input name: its SparseFeat's."""
        return self.sparsefeat.name

    @property
    def vocabulary_size(self):
        """Its SparseFeat's vocabulary size."""
        return self.sparsefeat.vocabulary_size

    @property
    def embedding_dim(self):
        """Its SparseFeat's embedding dimension."""
        return self.sparsefeat.embedding_dim

    @property
    def use_hash(self):
        """Whether the model hashes the raw values into ids (its SparseFeat's `use_hash`)."""
        return self.sparsefeat.use_hash

    @property
    def vocabulary_path(self):
        """Its SparseFeat's vocabulary path (always None here)."""
        return self.sparsefeat.vocabulary_path

    @property
    def dtype(self):
        """The dtype of the sequence's input: its SparseFeat's."""
        return self.sparsefeat.dtype

    @property
    def embeddings_initializer(self):
        """Its SparseFeat's initializer (None: DeepCTR's default)."""
        return self.sparsefeat.embeddings_initializer

    @property
    def embedding_name(self):
        """The table the sequence's ids look up: its SparseFeat's."""
        return self.sparsefeat.embedding_name

    @property
    def group_name(self):
        """Its SparseFeat's group, which places the pooled embedding in the DNN input."""
        return self.sparsefeat.group_name

    @property
    def trainable(self):
        """Whether its table is trained: its SparseFeat's."""
        return self.sparsefeat.trainable

    def __hash__(self):
        return self.name.__hash__()


FeatureColumn = Union[SparseFeat, VarLenSparseFeat, DenseFeat]


def get_feature_names(feature_columns: Sequence[FeatureColumn]) -> List[str]:
    """The model's input names, in order: the keys of the dict `fit` and `predict` take, as
    DeepCTR's `get_feature_names` (a sequence's name, then its `weight_name`, then its
    `length_name`)."""
    names: List[str] = []
    for column in feature_columns:
        if isinstance(column, VarLenSparseFeat):
            inputs = [column.name, column.weight_name, column.length_name]
        elif isinstance(column, (SparseFeat, DenseFeat)):
            inputs = [column.name]
        else:
            raise ValueError(f'unknown feature column {column!r}')
        names += [name for name in inputs if name is not None and name not in names]
    return names
