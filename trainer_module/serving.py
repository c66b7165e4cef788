"""The raw-features serving signature (`RAW_SIGNATURE`) and TF Serving's row format around it.

`serving_default` takes serialized tf.Examples: TFMA's Evaluators and gRPC clients use it, and it
reads any feature a tf.Example may lack. A JSON client (TF Serving's REST API) would have to build
and base64-encode those protos; `RAW_SIGNATURE` takes one [batch] tensor per raw feature instead,
in the schema's types: categorical features as the schema has them (strings, or integers such as
`hour`), dense features as float64 numbers where NaN marks a missing value (TF Serving's REST API
accepts `NaN` in a request). It rebuilds exactly what `tf.io.parse_example` would have given for
the same rows (a missing value is an absent one), so both signatures run the same Transform graph
on the same input and give the same scores.

TF Serving's row format (`{"instances": [{feature: value, ...}, ...]}`) names every input in every
instance and stacks each input's values into one tensor of the signature's dtype;
`instances_to_inputs` does the same, so `pipeline.predict` and the tests score a REST body as the
server would.
"""

import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from trainer_module import features
from trainer_module.settings import PROVENANCE_FILE, RAW_SIGNATURE, TrainerSettings

# The dtype of dense features in RAW_SIGNATURE: any JSON number, NaN where missing; an integer
# feature's values are exact up to 2**53.
DENSE_DTYPE = tf.float64


def raw_input_specs(raw_spec: Mapping, dense_features, separators: Mapping[str, str]
                    ) -> Dict[str, tf.TensorSpec]:
    """RAW_SIGNATURE's inputs for the (label-free) raw feature spec `raw_spec`: {name: [batch]}; a
    list feature (one of `separators`) is a [batch] string of its values with its separator
    between them, as the CSV cell holds them (TF Serving's REST API takes no ragged input)."""
    specs = {}
    for name, spec in raw_spec.items():
        if name in separators:
            specs[name] = tf.TensorSpec([None], tf.string, name=name)
            continue
        if not isinstance(spec, (tf.io.VarLenFeature, tf.io.FixedLenFeature)) or (
                isinstance(spec, tf.io.FixedLenFeature) and spec.shape not in ([], [1], (), (1,))):
            raise ValueError(f'feature {name!r}: {spec} is not a single value per row, which '
                             f'{RAW_SIGNATURE} takes')
        dtype = DENSE_DTYPE if name in dense_features else spec.dtype
        specs[name] = tf.TensorSpec([None], dtype, name=name)
    return specs


def split_values(strings: tf.Tensor, separator: str, dtype: tf.DType) -> tf.SparseTensor:
    """[batch] delimited strings -> the [batch, values] sparse tensor of their values in `dtype`, as
    ExampleGen writes a CSV cell of a list feature: an empty string is an empty list, and an empty
    value between two separators is one empty value."""
    split = tf.strings.split(strings, separator)
    present = tf.repeat(strings != '', split.row_lengths())
    values = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(split.flat_values, present),
        tf.where(strings != '', split.row_lengths(), tf.zeros_like(split.row_lengths())))
    if dtype != tf.string:
        values = values.with_flat_values(tf.strings.to_number(values.flat_values, dtype))
    return values.to_sparse()


def parsed_features(inputs: Mapping[str, tf.Tensor], raw_spec: Mapping,
                    separators: Mapping[str, str]) -> Dict:
    """RAW_SIGNATURE's inputs -> what tf.io.parse_example(rows, raw_spec) gives for the same rows:
    a dense NaN is an absent value, a list feature's string its values split at its separator."""
    parsed = {}
    batch = tf.shape(next(iter(inputs.values())), out_type=tf.int64)[0]
    dense_shape = tf.stack([batch, 1])
    # [row, 0] for every row: the indices of a feature that no row lacks.
    every_row = tf.stack([tf.range(batch), tf.zeros([batch], tf.int64)], axis=1)
    for name, spec in raw_spec.items():
        values = inputs[name]
        if name in separators:
            parsed[name] = split_values(values, separators[name], spec.dtype)
        elif isinstance(spec, tf.io.VarLenFeature):
            if values.dtype.is_floating:
                present = tf.logical_not(tf.math.is_nan(values))
                parsed[name] = tf.SparseTensor(
                    indices=tf.boolean_mask(every_row, present),
                    values=tf.cast(tf.boolean_mask(values, present), spec.dtype),
                    dense_shape=dense_shape)
            else:
                parsed[name] = tf.SparseTensor(every_row, tf.cast(values, spec.dtype),
                                               dense_shape)
        else:
            # A FixedLenFeature: a missing value is its default (without one, parse_example fails).
            if values.dtype.is_floating and spec.default_value is not None:
                values = tf.where(tf.math.is_nan(values),
                                  tf.cast(tf.reshape(spec.default_value, []), values.dtype), values)
            parsed[name] = tf.reshape(tf.cast(values, spec.dtype), [-1, *spec.shape])
    return parsed


def signature_input_dtypes(signature) -> Dict[str, tf.DType]:
    """{input name: dtype} of a loaded signature (a ConcreteFunction)."""
    return {name: spec.dtype for name, spec in signature.structured_input_signature[1].items()}


def instances_to_inputs(instances: Sequence[Mapping], dtypes: Mapping[str, tf.DType]
                        ) -> Dict[str, tf.Tensor]:
    """TF Serving's row format: every instance names every input; each input's values, stacked in
    instance order, become one tensor of the signature's dtype."""
    if not isinstance(instances, list) or not instances:
        raise ValueError('"instances" must be a non-empty list of objects')
    columns: Dict[str, List[Any]] = {name: [] for name in dtypes}
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            raise ValueError(f'instance {index}: expected an object of named inputs, got '
                             f'{instance!r}')
        unknown = sorted(set(instance) - set(dtypes))
        if unknown:
            raise ValueError(f'instance {index}: {unknown} are not inputs of the signature')
        for name in dtypes:
            if name not in instance:
                raise ValueError(f'instance {index}: missing named input {name!r}')
            columns[name].append(instance[name])
    inputs = {}
    for name, dtype in dtypes.items():
        try:
            inputs[name] = tf.constant(columns[name], dtype)
        except (TypeError, ValueError) as e:
            raise ValueError(f'input {name!r}: values {columns[name][:5]} are not of type '
                             f'{dtype.name}: {e}') from None
    return inputs


def exported_settings(saved_model_dir: str) -> Optional[TrainerSettings]:
    """The Trainer's settings of an exported model, from its provenance (None for a SavedModel
    without one, which the Trainer did not export)."""
    path = os.path.join(saved_model_dir, PROVENANCE_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return TrainerSettings.from_dict(json.load(f)['settings'])


def list_separators(saved_model_dir: str) -> Dict[str, str]:
    """{list feature: its separator} of an exported model (a SavedModel without the Trainer's
    settings has no list features)."""
    settings = exported_settings(saved_model_dir)
    return features.separators(settings) if settings else {}


def example_to_instance(example: tf.train.Example, dtypes: Mapping[str, tf.DType],
                        separators: Mapping[str, str]) -> Dict:
    """A raw tf.Example as a row-format instance of RAW_SIGNATURE (NaN for a missing number; a
    list feature's values joined by its separator, '' for none)."""
    instance: Dict[str, Any] = {}
    for name, dtype in dtypes.items():
        feature = example.features.feature.get(name)
        kind = feature.WhichOneof('kind') if feature is not None else None
        values = list(getattr(feature, kind).value) if kind else []
        if name in separators:
            instance[name] = separators[name].join(
                value.decode('utf-8') if isinstance(value, bytes) else str(value)
                for value in values)
        elif not values:
            if not dtype.is_floating:
                raise ValueError(f'feature {name!r} is missing, and only numbers may be')
            instance[name] = math.nan
        elif kind == 'bytes_list':
            instance[name] = values[0].decode('utf-8')
        elif kind == 'int64_list':
            instance[name] = int(values[0])
        else:
            # A float32's shortest decimal: the same float32 again once the signature casts it.
            instance[name] = float(str(np.float32(values[0])))
    return instance


def row_to_example(row: Mapping, types: Mapping[str, int]) -> bytes:
    """The serialized tf.Example of a raw row {feature: value}, each value typed as `types` says
    (the schema's FeatureType: INT, FLOAT, else BYTES); a missing value (None or NaN) is an absent
    feature, as an empty CSV cell is."""
    feature = {}
    for name, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if types[name] == schema_pb2.INT:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        elif types[name] == schema_pb2.FLOAT:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        else:
            feature[name] = tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[str(value).encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
