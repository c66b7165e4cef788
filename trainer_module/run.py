"""The Trainer's `run_fn` (TFX finds it as `trainer_module.run.run_fn`): trains the model on
Transform's output and exports a SavedModel, one step at a time, each in a module of its own:

- runtime.py: op threads, the distribution strategy, which process is kept, seed and determinism;
- data.py and plan.py: the splits read once each, the memory budget and the training plan;
- build.py: the compiled model; warm_start.py: its weights from the base model (the model that
  serves) when `training.warm_start` says so; training.py (with callbacks.py): `fit` with early
  stopping;
- gate_report.py: each gate's use of the experts on the validation split;
- vocabulary_report.py: each vocabulary's size and share of OOV values per split;
- export.py: the SavedModel and its signatures; provenance.py: what decided the model.
"""

import os

import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer_module.build import build_model
from trainer_module.export import export_serving_model
from trainer_module.features import feature_columns_from_transform
from trainer_module.gate_report import gate_report, write_gate_report
from trainer_module.plan import read_splits
from trainer_module.provenance import write_provenance
from trainer_module.runtime import (
    distribution_strategy,
    is_chief,
    output_dirs,
    seed_and_determinism,
    set_op_threads,
)
from trainer_module.settings import GATE_REPORT_DIR, TrainerSettings
from trainer_module.training import train
from trainer_module.vocabulary_report import (
    split_patterns,
    vocabulary_report,
    write_vocabulary_report,
)
from trainer_module.warm_start import warm_start


def run_fn(fn_args: FnArgs):
    """TFX's Trainer calls it with `fn_args.custom_config` (a `TrainerSettings` as a dict), the
    transformed splits' files and the Transform output; it writes the SavedModel into
    `fn_args.serving_model_dir`, the gate report beside it and TensorBoard logs into
    `fn_args.model_run_dir`; the vocabulary report beside the gate report. With
    `training.warm_start`, the model starts from `fn_args.base_model` (the serving-model
    directory of the Trainer's `base_model` input; None without one), and the provenance records
    how (`warm_start.warm_start`'s report)."""
    settings = TrainerSettings.from_dict(fn_args.custom_config)
    set_op_threads(settings.training.intra_op_parallelism_threads)
    strategy = distribution_strategy(settings.training.distribution)
    chief = is_chief(strategy)
    seed_and_determinism(settings)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    feature_columns = feature_columns_from_transform(settings, tf_transform_output)
    inputs = read_splits(fn_args.train_files, fn_args.eval_files,
                         tf_transform_output.transformed_feature_spec(), settings, feature_columns)
    with strategy.scope():
        model = build_model(settings, feature_columns)
    # Outside the strategy's scope: the base model it copies from is rebuilt to be read only.
    # The optimizer's state is not carried (Adam's moments restart): only the model's weights.
    warm = warm_start(model, settings, tf_transform_output, fn_args.base_model)
    with output_dirs(fn_args, chief) as dirs:
        result = train(model, inputs, settings, dirs.logs)
        gates = gate_report(model, inputs.evaluation)
        export_serving_model(model, tf_transform_output, settings, feature_columns,
                             dirs.serving_model)
        if chief:
            write_provenance(dirs.serving_model, settings, inputs.fingerprints, result.steps,
                             result.log_variances, warm)
            model_dir = os.path.dirname(dirs.serving_model)
            if gates:
                write_gate_report(gates, os.path.join(model_dir, GATE_REPORT_DIR))
            write_vocabulary_report(vocabulary_report(
                settings, tf_transform_output.vocabulary_size_by_name,
                split_patterns(fn_args.train_files),
                tf_transform_output.transformed_feature_spec()), model_dir)
