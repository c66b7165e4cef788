"""TFX's Evaluator with an executor that reads batches of records and sums groups of examples.

A profile of TFX's Evaluator (with the grouped extractors of components/grouped_evaluation.py
already in place) found much of its time in two TFMA combiners adding examples one by one (the
calibration histogram behind AUC and the plots, and the weighted sums behind Calibration,
MeanLabel and MeanPrediction), and much of the rest reading one record per Beam element and
formatting an error message for each batch of fewer than 1,000 records (docs/performance.md has
the figures; TFMA first
calls the serving signature positionally, which TensorFlow refuses after printing the batch; numpy
prints only a summary from 1,000 elements on). This executor reads its examples in batches of
records (components/batched_records.py, through compat/tfx_evaluator.py) and builds TFMA's
metrics with the combiners of compat/tfma_combiners.py. The extracts, metrics, plots and blessing
are TFMA's and TFX's own. A baseline model artifact that holds no model (a ServingBaseline's where
nothing serves yet) is left out, as a Resolver that found nothing leaves the input out.
"""

from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs as keys
from tfx.v1 import components as tfx_components

from compat import tfma_combiners, tfx_evaluator
from components import batched_records
from components.serving_baseline import has_model


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor, reading batches and combining groups (module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties):
        """TFX's Do, reading its examples in batches and building TFMA's metrics with the
        combiners for groups, and without an empty baseline."""
        baselines = [model for model in input_dict.get(keys.BASELINE_MODEL_KEY, [])
                     if has_model(model)]
        input_dict = {**input_dict, keys.BASELINE_MODEL_KEY: baselines}
        if not baselines:
            del input_dict[keys.BASELINE_MODEL_KEY]
        with (tfx_evaluator.tfxio_wrapped(batched_records.batched),
              tfma_combiners.tfma_combiners_for_groups()):
            super().Do(input_dict, output_dict, exec_properties)


class Evaluator(tfx_components.Evaluator):
    """TFX's Evaluator component with `Executor`."""
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
