"""The one reader of a ModelEvaluation (schema/evaluation_results.py), on a real TFMA run
of the pipeline's EvalConfig over six products whose predictions are features, and its
three users (review report, model card, run summary) reading the same values through it."""
from __future__ import annotations

import math

import pytest

from schema import evaluation_results as er
from tests.fixtures.evaluation import evaluate_from_features, path_example


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    # A: candidate right on 4 of 4, baseline on 2; D: candidate right on 1 of 2, baseline on 2.
    records = [path_example("A > B", "A", "A > B", "A > B" if i % 2 else "A > C") for i in range(4)]
    records += [path_example("D > E", "D", "D > E" if i else "D > F", "D > E") for i in range(2)]
    return evaluate_from_features(tmp_path_factory.mktemp("evaluation"), records)


def _values(uri):
    return {(v.slice, v.model, v.name, v.is_diff): v for v in er.metric_values(uri)}


def test_metric_values_per_slice_and_model_with_intervals(evaluation):
    values = _values(evaluation)
    cand = values[(er.OVERALL, "candidate", "leaf_accuracy", False)]
    base = values[(er.OVERALL, "baseline", "leaf_accuracy", False)]
    assert math.isclose(cand.value, 5 / 6) and math.isclose(base.value, 4 / 6)
    assert cand.slice_items == () and cand.lower <= cand.value <= cand.upper
    diff = values[(er.OVERALL, "candidate", "leaf_accuracy", True)]
    assert math.isclose(diff.value, 1 / 6) and diff.lower <= diff.value <= diff.upper
    a = values[("level_1 = A", "candidate", "leaf_accuracy", False)]
    assert a.slice_items == (("level_1", "A"),) and a.value == 1.0
    assert values[("level_1 = D", "baseline", "leaf_accuracy", False)].value == 1.0
    assert values[("level_1 = D", "candidate", "example_count", False)].value == 2
    assert values[("has_image = 0", "candidate", "example_count", False)].value == 6  # an int slice as text


def test_validation_and_stored_config(evaluation, tmp_path):
    result = er.validation_result(evaluation)
    failed = {f.metric_key.name for s in result.metric_validations_per_slice for f in s.failures}
    # One more right product of six is no significant win: the gate refuses the candidate.
    assert result.validation_ok is False and "gate_win_leaf_accuracy" in failed
    assert er.validation_result(str(tmp_path)) is None  # no validations file: no verdict
    config = er.stored_eval_config(evaluation)
    assert sorted(spec.name for spec in config.model_specs) == ["baseline", "candidate"]
    assert er.stored_eval_config(str(tmp_path)) is None


def test_report_card_and_summary_read_the_same_values(evaluation):
    from components.review_report.executor import read_intervals, read_metrics, read_validation
    from components.run_summary import overall_metrics
    from components.safe_pusher import model_card
    from components.safe_pusher.push import read_evaluation

    assert math.isclose(read_metrics(evaluation)["Overall"]["candidate"]["leaf_accuracy"], 5 / 6)
    assert math.isclose(read_intervals(evaluation)["Overall"]["difference"]["leaf_accuracy"].value, 1 / 6)
    assert read_validation(evaluation).ok is False
    assert math.isclose(overall_metrics(evaluation)["baseline"]["leaf_accuracy"], 4 / 6)
    rows, validation_ok = read_evaluation(evaluation)
    card = model_card.summarize_metrics(rows)
    assert validation_ok is False and math.isclose(card["overall"]["difference"]["leaf_accuracy"], 1 / 6)
    assert [s["slice"] for s in card["slices"] if s["column"] == "level_1"] == ["level_1=A", "level_1=D"]
