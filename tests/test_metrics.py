import math

from evaluator.metrics import VALUES, PathStats


def _value(stats, name):
    return VALUES[name][0](stats.c)


def test_hierarchical_precision_recall_f1_by_hand():
    stats = PathStats()
    stats.add("A > B > C", "A > B > C", "A > B > C")  # |P|=3 |T|=3 |PnT|=3
    stats.add("A > B > C", "A > B", "A > B > D")  # backed off: |P|=2 |T|=3 |PnT|=2
    stats.add("A > B > C", "A > X > Y", "A > X > Y")  # |P|=3 |T|=3 |PnT|=1
    stats.add("A > Z", "", "B > Q")  # abstained: |P|=0 |T|=2
    assert math.isclose(_value(stats, "hierarchical_precision"), 6 / 8)
    assert math.isclose(_value(stats, "hierarchical_recall"), 6 / 11)
    p, r = 6 / 8, 6 / 11
    assert math.isclose(_value(stats, "hierarchical_f1"), 2 * p * r / (p + r))
    assert math.isclose(_value(stats, "coverage"), 3 / 4)
    assert math.isclose(_value(stats, "node_precision"), 2 / 3)
    assert math.isclose(_value(stats, "leaf_recall"), 1 / 4)
    assert math.isclose(_value(stats, "leaf_precision"), 1 / 2)  # 2 got their full path, 1 right
    assert math.isclose(_value(stats, "leaf_accuracy"), 1 / 4)
    assert math.isclose(_value(stats, "accuracy_level_1"), 3 / 4)
    assert math.isclose(_value(stats, "accuracy_level_2"), 2 / 4)
    assert math.isclose(_value(stats, "accuracy_level_3"), 1 / 3)
    assert math.isclose(_value(stats, "coverage_level_3"), 2 / 4)


def test_merge_is_addition():
    a, b, both = PathStats(), PathStats(), PathStats()
    a.add("A > B", "A > B", "A > B")
    b.add("A > C", "A", "A > B")
    both.add("A > B", "A > B", "A > B")
    both.add("A > C", "A", "A > B")
    assert a.merge(b).c == both.c


def test_nothing_predicted_gives_zero_f1():
    stats = PathStats()
    stats.add("A > B", "", "A > C")
    assert _value(stats, "hierarchical_f1") == 0.0
    assert _value(stats, "coverage") == 0.0


def test_full_path_hf1_ignores_the_thresholds():
    stats = PathStats()
    stats.add("A > B > C", "A", "A > B > C")  # backed off to A, decoded path right
    stats.add("A > B > C", "", "A > B > D")  # abstained, decoded |F n T| = 2 of 3
    assert math.isclose(_value(stats, "full_path_hierarchical_f1"), 5 / 6)
    assert _value(stats, "hierarchical_f1") < _value(stats, "full_path_hierarchical_f1")


def test_values_take_bootstrap_replicates():
    """The same value functions run on arrays of resampled counter totals."""
    import numpy as np

    stats = PathStats()
    stats.add("A > B", "A > B", "A > B")
    stats.add("A > C", "A", "A > B")
    c = {k: np.array([v, 2 * v]) for k, v in stats.c.items()}
    for name in ("hierarchical_f1", "full_path_hierarchical_f1", "node_precision", "leaf_accuracy"):
        values = VALUES[name][0](c)
        assert np.allclose(values, _value(stats, name))  # doubling every count keeps every ratio


def test_one_pass_over_the_products_feeds_every_metric(tmp_path, monkeypatch):
    """PathMetrics and the five gate metrics share one accumulator: TFMA runs the path
    combiner once per product and slice (not once per metric class), and every gate value
    is derived from PathMetrics' output. Counted on a real TFMA run of the pipeline's
    EvalConfig, whose metric classes all ask for the same combiner settings."""
    import json

    from evaluator import metrics
    from evaluator.eval_config import build_eval_config
    from schema.catalog_spec import load_spec
    from schema.config import Gate
    from tests.fixtures.evaluation import evaluate_from_features, path_example

    config = build_eval_config(load_spec("flipkart"), 2, Gate(), with_baseline=True)
    settings = [json.loads(m.config) for m in config.metrics_specs[0].metrics]
    assert len(settings) == 1 + len(metrics.GATE_KINDS)
    # TFMA keeps the first of identical computations: their combiner settings must agree.
    assert {(s["depth"], s["confidence"]) for s in settings} == {(2, Gate().confidence)}

    calls = []
    add_input = metrics._PathMetricsCombiner.add_input

    def counted(self, acc, element):
        calls.append(1)
        return add_input(self, acc, element)

    monkeypatch.setattr(metrics._PathMetricsCombiner, "add_input", counted)
    n = 12
    records = [path_example("A > B", "A", "A > B" if i % 3 else "A > C", "A > C") for i in range(n)]
    out = evaluate_from_features(tmp_path, records, depth=2)
    # Each product is in 3 slices: Overall, level_1 = A, has_image = 0.
    assert len(calls) == 3 * n

    import tensorflow_model_analysis as tfma

    overall = next(r for r in tfma.load_metrics(out) if not r.slice_key.single_slice_keys)
    names = {kv.key.name for kv in overall.metric_keys_and_values}
    assert set(metrics.GATE_CLASSES) <= names and {"leaf_accuracy", "example_count"} <= names
    leaf = next(kv for kv in overall.metric_keys_and_values
                if kv.key.name == "leaf_accuracy" and kv.key.model_name == "candidate" and not kv.key.is_diff)
    assert math.isclose(leaf.value.double_value.value, 8 / 12)
