"""The incumbent for LocalDagRunner: the latest blessed model other than this run's candidate.

TFX's `LatestBlessedModelStrategy` answers "the latest blessed model". Once a run has
pushed its model, that model is the latest blessed one; a re-run on unchanged data gets
the same model from the Trainer's cache, and the resolver then hands the Evaluator the
candidate itself as its incumbent. The Evaluator's inputs differ from the first run's, so
it, the review report and the pusher run again only to find a tie with itself.

Leaving the candidate out keeps the comparison the first run made: the candidate against
the model that was in production before it. A re-run on unchanged data then resolves the
very artifacts of the first run, and TFX serves every component from its cache. When
another model was blessed in the meantime, that model is the incumbent, as it should be.

The resolver that uses this strategy reads this run's Trainer output, so it runs after
the Trainer. Vertex AI runs only TFX's built-in strategies, so the Vertex pipeline keeps
`LatestBlessedModelStrategy` (kubeflow/compiler.py).
"""
from __future__ import annotations

from typing import Dict, List, Optional

from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.common import resolver

MODEL_KEY = "model"  # every Model artifact of the pipeline
BLESSING_KEY = "model_blessing"  # every ModelBlessing artifact of the pipeline
CANDIDATE_KEY = "candidate"  # this run's Trainer output (fresh, or from the cache)


def latest_blessed_other_than(models: List[types.Artifact], blessings: List[types.Artifact],
                              candidates: List[types.Artifact]) -> tuple[list, list]:
    """([model], [its blessing]) of the newest blessed model that is not a candidate, or ([], [])."""
    excluded = {c.id for c in candidates}
    blessing_of = {
        b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY): b
        for b in sorted(blessings, key=lambda b: b.id)  # a model blessed twice: its newest blessing
        if b.get_int_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY) == 1
    }
    for model in sorted(models, key=lambda m: m.id, reverse=True):
        if model.id in blessing_of and model.id not in excluded:
            return [model], [blessing_of[model.id]]
    return [], []


class LatestBlessedOtherThanCandidateStrategy(resolver.ResolverStrategy):
    """Resolves `model` and `model_blessing` to the newest blessed model that is not one of
    `candidate`'s artifacts; `candidate` passes through unchanged."""

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        missing = {MODEL_KEY, BLESSING_KEY, CANDIDATE_KEY} - set(input_dict)
        if missing:
            raise ValueError(f"{type(self).__name__} needs the input channels {sorted(missing)}")
        model, blessing = latest_blessed_other_than(
            input_dict[MODEL_KEY], input_dict[BLESSING_KEY], input_dict[CANDIDATE_KEY])
        return {MODEL_KEY: model, BLESSING_KEY: blessing, CANDIDATE_KEY: list(input_dict[CANDIDATE_KEY])}
