"""What a kind of feature is: `FeatureKind`, the one definition the rest of the project asks.

A kind (a categorical column, a number, a list of values, a cross of categorical columns) owns
everything that differs between kinds: its config (a frozen dataclass, listed under its own key of
the config), the checks of that config, the columns its Transform outputs, its share of the
vocabularies and the Transform itself, the DeepCTR feature columns of the model, how a CSV cell and
a raw serving input of it are read, and the guess the draft makes from a sample of a column. Adding
a kind is a module of this package with a `FeatureKind` subclass, an entry in `KINDS`
(`trainer_module/features/__init__.py`) and its tests.

This module imports only the standard library at import time, as `trainer_module.settings` does:
the config and its error messages load before TensorFlow. The methods that build graphs import
TensorFlow when they run.
"""

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

# The delimiter of the pipeline's CSV files (components/csv_lines.py reads CSV's default dialect):
# a list separator may not be it, nor a quote or a line break, which end or quote a field.
CSV_RESERVED = (',', '"', '\n', '\r')


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """A vocabulary Transform counts (`preprocessing_fn`), named after the feature that owns it:
    the `top_k` most frequent tokens (None: all) seen at least `min_frequency` times, then
    `num_oov_buckets` ids that a token outside it is hashed into."""
    name: str
    top_k: Optional[int]
    min_frequency: int
    num_oov_buckets: int


@dataclasses.dataclass(frozen=True)
class Ids:
    """How the values of a categorical feature become ids in [0, size): a `vocabulary`, or, where
    there is none, `hash_buckets` (FarmHash of the value's text, in the Transform graph, so that
    serving hashes as training did)."""
    vocabulary: Optional[Vocabulary] = None
    hash_buckets: Optional[int] = None


class FeatureKind:
    """A kind of feature. Subclasses set `section` (the config key listing features of this kind,
    e.g. 'sparse_features'), `role` (what the draft calls a column of this kind) and `config`
    (their frozen dataclass, with a `name`), and define the methods below that apply to them; the
    defaults are those of a kind without a vocabulary, read as one value per row."""
    section: str
    role: str
    config: type
    # Whether each feature of this kind is a column of the data, by its name (in the CSV files,
    # the schema, the raw serving inputs; sliceable, watched for drift). A kind computed in the
    # Transform graph from other features' raw values (a cross) sets it False.
    column: bool = True

    def parse(self, item: Any) -> Any:
        """A config entry (a name, or a mapping of the dataclass's fields) -> the dataclass;
        TypeError for an unknown or missing field."""
        if isinstance(item, str):
            item = {'name': item}
        if not isinstance(item, Mapping):
            raise TypeError(f'expected a name or a mapping, got {item!r}')
        return self.config(**item)

    def check(self, feature, where: str, features: Mapping[str, Any]) -> None:
        """Raises ValueError starting with the key it refuses (`where` is the feature's, e.g.
        'sparse_features.user_id'); `features`: every feature of the config by name, for the
        settings that name another feature."""

    def outputs(self, feature) -> Tuple[str, ...]:
        """The names of the transformed features it outputs: its own, and any it adds."""
        return (feature.name,)

    def separator(self, feature) -> Optional[str]:
        """What separates the values in a CSV cell or a raw serving input (None: one value)."""
        return None

    def ids(self, feature, features: Mapping[str, Any], default_oov_buckets: int
            ) -> Optional[Ids]:
        """How its values become ids (None: it has none, as a number)."""
        return None

    def values(self, feature, inputs: Dict):
        """The feature's values as its Transform reads them, from the raw `inputs` (parsed
        tf.Examples, inside the TFT graph): computed once, for `tokens` and `transform` both."""
        return inputs[feature.name]

    def tokens(self, feature, values) -> Dict:
        """{vocabulary name: [n] strings} this feature adds to the counts of a vocabulary (its own,
        or the one it shares), from its `values`; none by default."""
        return {}

    def transform(self, features: Sequence, values: Mapping[str, Any], ids) -> Dict:
        """Its features' transformed outputs, {name: tensor}, from `values` ({feature: its
        `values`}); `ids(feature, strings)` maps strings to the ids of that feature's `Ids`."""
        raise NotImplementedError

    def model_columns(self, feature, features: Mapping[str, Any], sizes: Mapping[str, int]
                      ) -> list:
        """The DeepCTR feature columns the model takes for it; `sizes`: {feature: number of ids}
        of each feature with ids."""
        raise NotImplementedError

    def draft(self, name: str, column, frame) -> Optional[Tuple[Any, str]]:
        """From a sample of a column (a pandas Series of `frame`): (the feature, why), when the
        column looks like this kind; None when it does not."""
        return None


def positive_int(value, where: str, zero_allowed: bool = False) -> None:
    """ValueError naming `where` unless `value` is a whole number of at least 1 (or 0)."""
    least = 0 if zero_allowed else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f'{where}: must be a whole number, at least {least}, got {value!r}')
