"""The baseline every Evaluator compares the candidate with: the latest model the gate blessed,
other than the candidate itself.

TFX's LatestBlessedModelStrategy returns the candidate itself when the Trainer came from the cache:
each Evaluator then compares the model with itself, the gate blesses it, and the Pusher pushes a
copy of what already serves. Leaving the candidate out instead makes a run with nothing new repeat
the earlier run's inputs exactly, so that the Evaluators, the gate and the Pusher come from the
cache too: nothing is judged twice and nothing is pushed again. A candidate that an earlier run
refused is compared with the same baseline as then, and refused again.

KFP v2 compiles only TFX's own strategies (its runner uses LatestBlessedModelStrategy; there the
Pusher sees that the model already serves: `atomic_pusher`).
"""

from typing import Dict

from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)

# The resolver's inputs: the candidate (this run's Trainer output), and every model and blessing
# of the pipeline.
CANDIDATE_KEY, MODEL_KEY, BLESSING_KEY = 'candidate', 'model', 'model_blessing'


class LatestBlessedOtherModelStrategy(LatestBlessedModelStrategy):
    """TFX's LatestBlessedModelStrategy over the pipeline's models other than the candidate."""

    def resolve_artifacts(self, store, input_dict):
        """`input_dict` ({CANDIDATE_KEY, MODEL_KEY, BLESSING_KEY: [artifact]}) -> the candidate as
        given, and the latest blessed model other than the candidate with its blessing under
        MODEL_KEY and BLESSING_KEY ([] and [] where there is none)."""
        candidates = {artifact.id for artifact in input_dict[CANDIDATE_KEY]}
        others = [model for model in input_dict[MODEL_KEY] if model.id not in candidates]
        resolved: Dict[str, list] = {MODEL_KEY: [], BLESSING_KEY: []}
        if others and input_dict[BLESSING_KEY]:
            resolved = self._resolve({MODEL_KEY: others, BLESSING_KEY: input_dict[BLESSING_KEY]},
                                     MODEL_KEY, BLESSING_KEY)
        return {CANDIDATE_KEY: input_dict[CANDIDATE_KEY], **resolved}
