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


def test_slice_gate_is_neutral_on_tiny_slices():
    stats = PathStats()
    for _ in range(5):
        stats.add("A > B", "C", "C > D")
    assert _value(stats, "slice_gate_hierarchical_f1") == 1.0
    for _ in range(20):
        stats.add("A > B", "C", "C > D")
    assert _value(stats, "slice_gate_hierarchical_f1") == 0.0
