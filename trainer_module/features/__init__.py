"""The kinds of feature the pipeline reads, each one definition (`kind.FeatureKind`), and the
functions the rest of the project asks them through.

`KINDS` lists them in the model's input order: categorical (`sparse_features`), cross
(`cross_features`, computed from categorical features, no column of its own), list
(`sequence_features`), numeric (`dense_features`). A config, the Trainer's settings and Transform's
custom_config each hold one list of features per kind, under the kind's `section`; everything that
differs between kinds is asked of the kind, here or where a component needs it:
- the config's checks (`check_features`), the columns of the data the features read (`columns`)
  and the columns each feature outputs;
- Transform's vocabularies and outputs (`trainer_module.preprocessing.preprocessing_fn`);
- the model's DeepCTR feature columns (`feature_columns_from_transform`);
- how a CSV cell or a raw serving input is read: one value, or values split at a separator
  (`separators`);
- the draft's guess of a column's kind (`pipeline/draft.py`).
"""

from typing import Any, Callable, Dict, List, Mapping, Tuple

from trainer_module.features import categorical, cross, numeric, sequence
from trainer_module.features.categorical import SparseFeature
from trainer_module.features.cross import CrossFeature
from trainer_module.features.kind import FeatureKind, Ids
from trainer_module.features.numeric import DenseFeature
from trainer_module.features.sequence import SequenceFeature

KINDS: Tuple[FeatureKind, ...] = (categorical.KIND, cross.KIND, sequence.KIND, numeric.KIND)
SECTIONS = tuple(kind.section for kind in KINDS)
# The order the draft asks the kinds in, the most particular first: a text column whose cells hold
# separators is a list before it is a categorical column; a number is numeric only when no kind
# before took it. A cross is no column, so the draft never guesses one.
DRAFT_ORDER: Tuple[FeatureKind, ...] = (sequence.KIND, categorical.KIND, numeric.KIND)
_BY_TYPE = {kind.config: kind for kind in KINDS}

__all__ = ['KINDS', 'SECTIONS', 'DRAFT_ORDER', 'CrossFeature', 'DenseFeature', 'SequenceFeature',
           'SparseFeature', 'kind_of', 'features_by_name', 'columns', 'check_features',
           'feature_ids', 'separators', 'outputs', 'feature_columns',
           'feature_columns_from_transform', 'from_dicts', 'to_dicts']


def kind_of(feature) -> FeatureKind:
    """The kind of a feature's config (a dataclass of one of `KINDS`)."""
    return _BY_TYPE[type(feature)]


def features_by_name(settings) -> Dict[str, Any]:
    """{name: feature} of every feature of `settings` (an object with a tuple of features per
    kind's section, such as the config or the Trainer's settings), kind by kind in `KINDS`'
    order."""
    return {feature.name: feature for kind in KINDS for feature in getattr(settings, kind.section)}


def columns(settings) -> List[str]:
    """The names of the features of `settings` that are columns of the data (the kinds with
    `column`), kind by kind in `KINDS`' order; a cross is computed from them."""
    return [feature.name for kind in KINDS if kind.column
            for feature in getattr(settings, kind.section)]


def from_dicts(values: Mapping[str, Any]) -> Dict[str, tuple]:
    """{section: features} from {section: [a name or a mapping of fields]} (a section left out is
    empty); TypeError naming the section and the position of an entry its dataclass refuses."""
    parsed = {}
    for kind in KINDS:
        items = []
        for index, item in enumerate(values.get(kind.section) or ()):
            try:
                items.append(kind.parse(item))
            except TypeError as e:
                raise TypeError(f'{kind.section}[{index}]: {e}') from None
        parsed[kind.section] = tuple(items)
    return parsed


def to_dicts(settings) -> Dict[str, list]:
    """{section: [the fields of each feature]}, the inverse of `from_dicts`."""
    import dataclasses
    return {kind.section: [dataclasses.asdict(f) for f in getattr(settings, kind.section)]
            for kind in KINDS}


def check_features(settings) -> None:
    """Every feature's settings, as its kind checks them, and the names the features output:
    ValueError naming the key of the first refused."""
    features = features_by_name(settings)
    for kind in KINDS:
        for feature in getattr(settings, kind.section):
            kind.check(feature, f'{kind.section}.{feature.name}', features)


def outputs(settings) -> List[Tuple[str, str]]:
    """(transformed feature name, the feature that outputs it), for every output of every
    feature."""
    return [(output, name) for name, feature in features_by_name(settings).items()
            for output in kind_of(feature).outputs(feature)]


def feature_ids(settings, num_oov_buckets: int) -> Dict[str, Ids]:
    """{feature name: how its values become ids} of every feature that has ids."""
    features = features_by_name(settings)
    ids = {name: kind_of(feature).ids(feature, features, num_oov_buckets)
           for name, feature in features.items()}
    return {name: value for name, value in ids.items() if value is not None}


def separators(settings) -> Dict[str, str]:
    """{feature: the separator of its values} of the features with several values per row."""
    found = {name: kind_of(feature).separator(feature)
             for name, feature in features_by_name(settings).items()}
    return {name: separator for name, separator in found.items() if separator is not None}


def feature_columns(settings, vocabulary_size: Callable[[str], int]) -> list:
    """The model's DeepCTR feature columns for `settings` (with `num_oov_buckets`), each id range
    sized from `vocabulary_size(name)`: the tokens in the vocabulary named `name`."""
    features = features_by_name(settings)
    sizes: Dict[str, int] = {}
    for name, ids in feature_ids(settings, settings.num_oov_buckets).items():
        if ids.vocabulary is not None:
            sizes[name] = vocabulary_size(ids.vocabulary.name) + ids.vocabulary.num_oov_buckets
        elif ids.hash_buckets is not None:
            sizes[name] = ids.hash_buckets
    return [column for feature in features.values()
            for column in kind_of(feature).model_columns(feature, features, sizes)]


def feature_columns_from_transform(settings, tf_transform_output) -> list:
    """The feature columns of `settings` (`TrainerSettings`), sized from the Transform output's
    vocabularies (a `tft.TFTransformOutput`)."""
    return feature_columns(settings, tf_transform_output.vocabulary_size_by_name)
