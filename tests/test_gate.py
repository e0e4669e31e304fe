"""The gate: exact intervals and the decision rule (plain Python), then the same rule run
by TFMA on a small eval set whose predictions are features (no model needed)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from evaluator import stats
from schema.config import Gate, GateError
from tests.fixtures.evaluation import evaluate_from_features, path_example


def test_clopper_pearson_matches_published_values():
    # Clopper & Pearson / common tables: 5 of 10 at 95% -> [0.1871, 0.8129]; 0 of 10 -> [0, 0.3085].
    lo, hi = stats.clopper_pearson(5, 10, 0.95)[1:]
    assert math.isclose(lo, 0.187086, abs_tol=1e-5) and math.isclose(hi, 0.812914, abs_tol=1e-5)
    assert stats.clopper_pearson(0, 10, 0.95)[1] == 0.0
    assert math.isclose(stats.clopper_pearson(0, 10, 0.95)[2], 0.308497, abs_tol=1e-5)
    # one-sided 90% lower bound of 19 of 20 is the 0.1 quantile of Beta(19, 2), whose CDF is
    # 20 x^19 - 19 x^20 in closed form.
    x = float(stats.precision_lower_bound(19, 20, 0.9))
    assert math.isclose(20 * x ** 19 - 19 * x ** 20, 0.1, abs_tol=1e-9)
    assert float(stats.precision_lower_bound(0, 20, 0.9)) == 0.0


def test_a_tie_is_not_a_win():
    same = np.array([1, 0, 1, 1, 0] * 40, bool)
    gain = stats.paired_proportion_difference(same, same, 0.95)
    assert gain == (0.0, 0.0, 0.0)
    assert not stats.is_win(gain, Gate().min_gain)
    assert not stats.blocks(gain, 0.0)


def test_a_clear_gain_is_a_win_and_a_small_one_is_not():
    rng = np.random.default_rng(0)
    base = rng.random(1500) < 0.81
    better = base | (rng.random(1500) < 0.5)  # fixes about half of the baseline's errors
    assert stats.is_win(stats.paired_proportion_difference(better, base, 0.95), Gate().min_gain)
    one_more = base.copy()
    one_more[np.where(~base)[0][0]] = True  # a single product more
    gain = stats.paired_proportion_difference(one_more, base, 0.95)
    assert gain.value > 0 and not stats.is_win(gain, Gate().min_gain)


def test_significant_slice_regression_beyond_tolerance_blocks():
    base = np.ones(200, bool)
    worse = base.copy()
    worse[:40] = False  # -0.20 on 200 products
    diff = stats.paired_proportion_difference(worse, base, 0.95)
    assert diff.upper < 0 and stats.blocks(diff, 0.05)
    assert stats.block_value(diff, 0.05) < 0


def test_small_slice_regression_is_not_significant():
    base = np.ones(3, bool)
    worse = np.zeros(3, bool)  # lost all 3: -1.0, but 3 products prove nothing at 95%
    diff = stats.paired_proportion_difference(worse, base, 0.95)
    assert diff.value == -1.0 and diff.upper >= 0
    assert not stats.blocks(diff, 0.05) and stats.block_value(diff, 0.05) >= 0


def test_significant_but_within_tolerance_does_not_block():
    base = np.ones(4000, bool)
    worse = base.copy()
    worse[:80] = False  # -0.02, significant on 4,000 products, under a 0.05 tolerance
    diff = stats.paired_proportion_difference(worse, base, 0.95)
    assert diff.upper < 0 and not stats.blocks(diff, 0.05)


def test_paired_bootstrap_of_a_ratio_metric():
    rng = np.random.default_rng(1)
    n = 500
    num_a, num_b = (rng.random(n) < 0.9).astype(float), (rng.random(n) < 0.6).astype(float)
    den = np.ones(n)
    weights = stats.poisson_weights(n)

    def share(c):
        return c["num"] / c["den"]

    a = {"num": num_a, "den": den}
    b = {"num": num_b, "den": den}
    totals_a = {k: v.sum() for k, v in a.items()}
    totals_b = {k: v.sum() for k, v in b.items()}
    diff = stats.bootstrap_interval(share, totals_a, stats.replicate(a, weights), 0.95,
                                    baseline=(totals_b, stats.replicate(b, weights)))
    assert diff.lower < diff.value < diff.upper
    assert 0.2 < diff.lower and diff.upper < 0.4  # true difference 0.3
    same = stats.bootstrap_interval(share, totals_a, stats.replicate(a, weights), 0.95,
                                    baseline=(totals_a, stats.replicate(a, weights)))
    assert same == (0.0, 0.0, 0.0)  # paired: identical models never differ


def test_gate_settings_are_checked():
    with pytest.raises(GateError):
        Gate(min_gain=0.0)
    with pytest.raises(GateError):
        Gate(confidence=1.0)


# ---------------------------------------------------------------------------- TFMA


def _failures(output: str) -> list[tuple[str, str]]:
    import tensorflow_model_analysis as tfma

    from schema.evaluation_results import slice_name

    result = tfma.load_validation_result(output)
    return [(slice_name(s.slice_key), f.metric_key.name)
            for s in result.metric_validations_per_slice for f in s.failures]


@pytest.fixture(scope="module")
def gate_runs(tmp_path_factory):
    """Two TFMA runs: a candidate that is better overall but loses a large slice
    (Shoes: 50 products, 30 lost) and a tiny one (Bags: 3 of 3 lost); and a tie."""
    records = []
    for i in range(400):  # Apparel: baseline right on half, candidate on all
        label = "Apparel > Shirts"
        records.append(path_example(label, "Apparel", label, label if i % 2 else "Apparel > Jeans"))
    for i in range(50):  # Shoes: candidate loses 30 of 50 the baseline got right
        label = "Shoes > Boots"
        records.append(path_example(label, "Shoes", label if i >= 30 else "Shoes > Heels", label))
    for _ in range(3):  # Bags: candidate loses all 3 (insignificant)
        label = "Bags > Totes"
        records.append(path_example(label, "Bags", "Bags > Clutches", label))
    regression = evaluate_from_features(tmp_path_factory.mktemp("regression"), records, Gate())
    tie_records = [path_example("A > B", "A", "A > B", "A > B") for _ in range(100)]
    tie_records += [path_example("A > C", "A", "A > B", "A > B") for _ in range(20)]
    tie = evaluate_from_features(tmp_path_factory.mktemp("tie"), tie_records, Gate())
    return regression, tie


def test_tfma_blocks_the_significant_slice_and_not_the_tiny_one(gate_runs):
    regression, _ = gate_runs
    failures = _failures(regression)
    assert ("level_1 = Shoes", "gate_slice_leaf_accuracy") in failures
    assert not any(where == "level_1 = Bags" for where, _ in failures)
    assert not any(name == "gate_win_leaf_accuracy" for _, name in failures)  # overall it is a clear win


def test_tfma_output_has_intervals_and_counts_per_slice(gate_runs):
    import tensorflow_model_analysis as tfma

    from schema.evaluation_results import slice_name

    regression, _ = gate_runs
    seen = {}
    for record in tfma.load_metrics(regression):
        for kv in record.metric_keys_and_values:
            seen[(slice_name(record.slice_key), kv.key.name, kv.key.model_name, kv.key.is_diff)] = kv
    shoes = seen[("level_1 = Shoes", "leaf_accuracy", "candidate", True)]
    assert math.isclose(shoes.value.double_value.value, -30 / 50)
    assert shoes.confidence_interval.upper_bound.double_value.value < 0
    assert seen[("level_1 = Bags", "example_count", "candidate", False)].value.double_value.value == 3
    from components.review_report.executor import read_confidence

    assert read_confidence(regression) == Gate().confidence  # what the report and summary print
    for model in ("candidate", "baseline"):
        kv = seen[("Overall", "full_path_hierarchical_f1", model, False)]
        ci = kv.confidence_interval
        assert ci.lower_bound.double_value.value <= kv.value.double_value.value <= ci.upper_bound.double_value.value


def test_tfma_a_tie_is_refused(gate_runs):
    _, tie = gate_runs
    import tensorflow_model_analysis as tfma

    assert not tfma.load_validation_result(tie).validation_ok
    assert ("Overall", "gate_win_leaf_accuracy") in _failures(tie)
