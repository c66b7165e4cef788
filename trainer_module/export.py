"""The Trainer's export: the model and the Transform graph in one SavedModel, with its signatures:
- `serving_default`: serialized raw `tf.Example`s (`examples`) -> the Transform graph, then the
  model; one output per task, named after it, and an ESMM's cvr (`models.predictions_model`), named
  `<ctcvr task>_given_<ctr task>` (TFMA and gRPC clients call it);
- `serving_raw` (`RAW_SIGNATURE`): the same on one tensor per raw feature, by name, for JSON clients
  such as TF Serving's REST API (trainer_module/serving.py);
- `transform_features`: the Transform graph alone on `examples` (labels included), for TFMA;
- `gate_weights`: each gate's weights over the experts on `examples`, {gate: [batch, experts it
  weighs]} (a model with gates only: a gate per task for MMOE, each level's for PLE).

The model is saved without its layers' call traces: it is read through these signatures
(`tf.saved_model.load`), not rebuilt by `keras.models.load_model`.
"""

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from trainer_module import features
from trainer_module.data import model_inputs
from trainer_module.models import gate_weights_model, has_gates, predictions_model
from trainer_module.serving import parsed_features, raw_input_specs
from trainer_module.settings import RAW_SIGNATURE, TrainerSettings


def export_serving_model(model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                         settings: TrainerSettings, feature_columns, path: str):
    """Saves `model` (built on `feature_columns`, the columns of `tf_transform_output`) with the
    Transform graph and the signatures above as a SavedModel into `path`."""
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k not in settings.label_columns}
    examples = tf.TensorSpec([None], tf.string, name='examples')
    separators = features.separators(settings)
    dense = [feature.name for feature in settings.dense_features]
    # Every prediction by name: the tasks' outputs, and what the model predicts beside them.
    model.predictions = predictions_model(model)

    @tf.function(input_signature=[examples])
    def serve(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        return model.predictions(model_inputs(transformed, feature_columns), training=False)

    @tf.function(input_signature=[raw_input_specs(serving_spec, dense, separators)])
    def serve_raw(raw):
        transformed = model.tft_layer(parsed_features(raw, serving_spec, separators))
        return model.predictions(model_inputs(transformed, feature_columns), training=False)

    @tf.function(input_signature=[examples])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, raw_spec))

    signatures = {'serving_default': serve, RAW_SIGNATURE: serve_raw,
                  'transform_features': transform_features}
    if has_gates(model):
        model.gates = gate_weights_model(model)

        @tf.function(input_signature=[examples])
        def gate_weights(serialized):
            transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
            return model.gates(model_inputs(transformed, feature_columns), training=False)

        signatures['gate_weights'] = gate_weights
    # Without each layer's call traces (save_traces), which only keras.models.load_model uses to
    # rebuild the model without this package's code: every reader of the model here (TFMA as
    # TF_GENERIC, serving, the Pusher's checks) calls its signatures. The traces were most of the
    # export's time (docs/performance.md).
    model.save(path, save_format='tf', signatures=signatures, save_traces=False)
