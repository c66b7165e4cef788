"""DriftValidator: TFX's DistributionValidator against the statistics of the last data that passed
every check (AnomalyCheck's `checked_statistics`), if any.

TFX's DistributionValidator rubber-stamps when it has no baseline statistics, but declares the
baseline a required input, so that on a first run (nothing to compare with) the orchestrator fails
it instead. This component is the same executor with the baseline optional (absent or empty), and
`LatestIfAnyStrategy` resolves "the latest statistics, or none" without failing. Baseline
statistics without splits (a ServingBaseline's where nothing serves yet) count as none.
"""

from typing import List

from tfx import types
from tfx.components.distribution_validator import executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.io import fileio
from tfx.proto import distribution_validator_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.types.component_spec import ChannelParameter
from tfx.utils import proto_utils

from components.anomaly_check import CheckedStatistics, checked_split_names


class LatestIfAnyStrategy(LatestArtifactStrategy):
    """TFX's LatestArtifactStrategy, except that finding nothing resolves to nothing instead of
    failing the Resolver. KFP v2 compiles only TFX's own strategies, so its runner uses those."""

    def resolve_artifacts(self, store, input_dict):
        """`input_dict` ({key: [artifact]}) -> {key: [its latest artifact] or []}."""
        return self._resolve(input_dict)


class DriftValidatorSpec(keys.DistributionValidatorSpec):
    """TFX's DistributionValidatorSpec with the baseline optional, as AnomalyCheck's
    CheckedStatistics."""

    INPUTS = {**keys.DistributionValidatorSpec.INPUTS,
              keys.BASELINE_STATISTICS_KEY: ChannelParameter(type=CheckedStatistics,
                                                             optional=True)}


class Executor(executor.Executor):
    """TFX's, with the inputs as a KFP v2 container hands them over (both found by
    tests/test_kubeflow_executed.py): an input whose resolver found nothing is left out, where
    TFX's executor looks the key up (a KeyError on a first run); and the config comes as the
    JSON text of its proto, which TFX's executor reads as the proto a local run passes (an
    AttributeError once there is a baseline)."""

    def Do(self, input_dict, output_dict, exec_properties):
        """TFX's executor on the inputs, the config and the baseline (none, or the checked
        statistics as ExampleStatistics) read as it expects them: writes `output_dict`'s
        anomalies and returns its ExecutorOutput."""
        config = exec_properties.get(keys.DISTRIBUTION_VALIDATOR_CONFIG_KEY)
        if isinstance(config, str):
            parsed = distribution_validator_pb2.DistributionValidatorConfig()
            exec_properties = {**exec_properties,
                               keys.DISTRIBUTION_VALIDATOR_CONFIG_KEY:
                                   proto_utils.json_to_proto(config, parsed)}
        # TFX's executor reads the baseline as ExampleStatistics, with their split names.
        baselines: List[types.Artifact] = []
        for checked in input_dict.get(keys.BASELINE_STATISTICS_KEY, []):
            splits = checked_split_names(checked) if fileio.exists(checked.uri) else []
            if not splits:
                continue
            baseline = standard_artifacts.ExampleStatistics()
            baseline.uri = checked.uri
            baseline.split_names = artifact_utils.encode_split_names(splits)
            baselines.append(baseline)
        return super().Do({**input_dict, keys.BASELINE_STATISTICS_KEY: baselines}, output_dict,
                          exec_properties)


class DriftValidator(base_component.BaseComponent):
    """The drift and skew checks of `config` on `statistics` against `baseline_statistics` (a
    Resolver's channel, possibly empty); outputs `anomalies`."""

    SPEC_CLASS = DriftValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, statistics: types.BaseChannel, baseline_statistics: types.BaseChannel,
                 config: distribution_validator_pb2.DistributionValidatorConfig):
        super().__init__(spec=DriftValidatorSpec(**{
            keys.STATISTICS_KEY: statistics,
            keys.BASELINE_STATISTICS_KEY: baseline_statistics,
            keys.DISTRIBUTION_VALIDATOR_CONFIG_KEY: config,
            keys.ANOMALIES_KEY: types.Channel(type=standard_artifacts.ExampleAnomalies)}))
