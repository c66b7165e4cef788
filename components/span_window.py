"""The resolvers of continuous training (pipeline/spans.py): the spans the Trainer learns from,
and the model it starts from.

- `WindowStrategy`: for each span of the window, the newest Examples of it that passed every data
  check. AnomalyCheck records on the statistics it publishes the id and span of the examples they
  describe (`EXAMPLES_ID`, `SPAN`): examples whose check failed are never trained on, even when a
  later run read the same span again. TFX's SpanRangeStrategy would take every Examples artifact
  of a span, checked or not, and each of them once per time the span was read.
- `LatestBlessedBeforeStrategy`: the latest model the gate blessed on a span before this run's.
  The latest blessed model outright would be, when a run is repeated, the model that the same span
  trained the first time: the Trainer's input would change, and the rerun train again from its own
  output and push again. Before the span, a rerun resolves what the first run did, and comes from
  the cache.

Both are this project's strategies: local runs only (KFP v2 compiles TFX's own).
"""

from typing import Dict, List

from tfx import types
from tfx.dsl.components.common import resolver

from components.baseline_resolver import BLESSING_KEY, MODEL_KEY

# Custom properties: on AnomalyCheck's statistics, the examples they describe; on the gate's
# blessing, the span its evaluation read. ExampleGen's own `span` property has the same name.
SPAN, EXAMPLES_ID = 'span', 'examples_id'
EXAMPLES_KEY, CHECKED_KEY = 'examples', 'checked'


def span_of(artifact: types.Artifact) -> int:
    """An artifact's span, a custom property as ExampleGen records it (0 where none is)."""
    return artifact.get_int_custom_property(SPAN)


def checked_examples(examples: List[types.Artifact],
                     checked: List[types.Artifact]) -> Dict[int, types.Artifact]:
    """{span: the newest of `examples` of that span whose statistics are among `checked`
    (AnomalyCheck's published statistics)}."""
    passed = {artifact.get_int_custom_property(EXAMPLES_ID) for artifact in checked
              if artifact.has_custom_property(EXAMPLES_ID)}
    newest: Dict[int, types.Artifact] = {}
    for artifact in sorted(examples, key=lambda a: a.id):
        if artifact.id in passed:
            newest[span_of(artifact)] = artifact
    return newest


class WindowStrategy(resolver.ResolverStrategy):
    """The checked examples of the spans `first` to `last` (pipeline.spans.SpanPlan.window)."""

    def __init__(self, first: int, last: int):
        self._spans = range(first, last + 1)

    def resolve_artifacts(self, store, input_dict):
        """{EXAMPLES_KEY: [every ExampleGen output], CHECKED_KEY: [every AnomalyCheck output]} ->
        {EXAMPLES_KEY: one per span, oldest first, CHECKED_KEY: as given}. A span without checked
        examples fails the resolver, naming it in the log, and TFX then skips every component
        after it: the local runner reads such spans before it starts the run."""
        found = checked_examples(input_dict[EXAMPLES_KEY], input_dict[CHECKED_KEY])
        missing = [span for span in self._spans if span not in found]
        if missing:
            raise RuntimeError(f'span {missing[0]} of the training window has no examples that '
                               'passed the data checks')
        return {EXAMPLES_KEY: [found[span] for span in self._spans],
                CHECKED_KEY: input_dict[CHECKED_KEY]}


class LatestBlessedBeforeStrategy(resolver.ResolverStrategy):
    """The model whose every task the gate blessed on the newest span before `span` (the latest
    such, where one span blessed several)."""

    def __init__(self, span: int):
        self._span = span

    def resolve_artifacts(self, store, input_dict):
        """{MODEL_KEY: [models], BLESSING_KEY: [the gate's blessings, `blessed` where every task
        blessed]} -> that model and its blessing, or [] and [] where there is none."""
        models = {model.id: model for model in input_dict[MODEL_KEY]}
        blessed = [blessing for blessing in input_dict[BLESSING_KEY]
                   if blessing.has_custom_property(SPAN) and span_of(blessing) < self._span
                   and blessing.get_int_custom_property('blessed') == 1
                   and blessing.get_int_custom_property('current_model_id') in models]
        if not blessed:
            return {MODEL_KEY: [], BLESSING_KEY: []}
        # The newest span's (a backfill blesses an older span later).
        latest = max(blessed, key=lambda b: (span_of(b), b.id))
        return {MODEL_KEY: [models[latest.get_int_custom_property('current_model_id')]],
                BLESSING_KEY: [latest]}
