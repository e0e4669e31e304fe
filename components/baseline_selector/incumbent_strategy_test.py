"""The local incumbent: the newest blessed model, never this run's candidate."""
import pytest
from tfx.types import standard_artifacts

from components.baseline_selector.incumbent_strategy import (
    BLESSING_KEY, CANDIDATE_KEY, MODEL_KEY, LatestBlessedOtherThanCandidateStrategy,
)


def _model(artifact_id):
    model = standard_artifacts.Model()
    model.id = artifact_id
    return model


def _blessing(artifact_id, model_id, blessed):
    blessing = standard_artifacts.ModelBlessing()
    blessing.id = artifact_id
    blessing.set_int_custom_property("current_model_id", model_id)
    blessing.set_int_custom_property("blessed", int(blessed))
    return blessing


def _resolve(models, blessings, candidates):
    return LatestBlessedOtherThanCandidateStrategy().resolve_artifacts(
        None, {MODEL_KEY: models, BLESSING_KEY: blessings, CANDIDATE_KEY: candidates})


def _ids(result):
    return [a.id for a in result[MODEL_KEY]], [a.id for a in result[BLESSING_KEY]]


def test_a_pushed_candidate_is_not_its_own_incumbent():
    """The re-run after a push: the candidate (model 5) is the newest blessed model, so the
    incumbent is the one blessed before it (model 2), as in the run that pushed it."""
    models = [_model(i) for i in (1, 2, 3, 5)]
    blessings = [_blessing(10, 2, True), _blessing(11, 3, False), _blessing(12, 5, True)]
    result = _resolve(models, blessings, [models[3]])
    assert _ids(result) == ([2], [10])
    assert [a.id for a in result[CANDIDATE_KEY]] == [5]


def test_a_new_candidate_meets_the_newest_blessed_model():
    models = [_model(i) for i in (1, 2, 4, 6)]
    blessings = [_blessing(10, 1, True), _blessing(11, 4, True), _blessing(12, 2, False)]
    assert _ids(_resolve(models, blessings, [models[3]])) == ([4], [11])


def test_no_other_blessed_model_resolves_to_nothing():
    """The first run, or a re-run of it: the BaselineSelector then takes its fallback."""
    models = [_model(1), _model(2)]
    assert _ids(_resolve(models, [], [models[1]])) == ([], [])
    assert _ids(_resolve(models, [_blessing(10, 2, True)], [models[1]])) == ([], [])


def test_a_missing_channel_is_named():
    with pytest.raises(ValueError, match="candidate"):
        LatestBlessedOtherThanCandidateStrategy().resolve_artifacts(None, {MODEL_KEY: [], BLESSING_KEY: []})
