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
