from evaluator import metrics
from evaluator.eval_config import Gate, build_eval_config
from schema.catalog_spec import load_spec


def _by_class(config):
    return {m.class_name: m for m in config.metrics_specs[0].metrics}


def test_every_metric_is_named_and_importable():
    config = build_eval_config(load_spec("fashion"), 3, Gate(), with_baseline=True)
    by_class = _by_class(config)
    for name in ("hierarchical_precision", "hierarchical_recall", "hierarchical_f1", "coverage",
                 "accuracy_level_3", "coverage_level_2", "leaf_precision", "leaf_recall", "node_precision"):
        cls = metrics.class_name(name)
        assert cls in by_class and by_class[cls].module == "evaluator.metrics"
        assert getattr(metrics, cls)().name == name


def test_value_floors_gate_the_overall_slice_and_change_thresholds_the_baseline():
    gate = Gate(min_hierarchical_f1=0.6, f1_margin_over_baseline=0.01, slice_tolerance=0.05)
    config = build_eval_config(load_spec("fashion"), 3, gate, with_baseline=True)
    f1 = _by_class(config)[metrics.class_name("hierarchical_f1")]
    assert not f1.HasField("threshold")  # a global threshold would gate every tiny slice
    overall = [t for t in f1.per_slice_thresholds if not t.slicing_specs[0].feature_keys][0]
    assert overall.threshold.value_threshold.lower_bound.value == 0.6
    assert abs(overall.threshold.change_threshold.absolute.value - 0.01) < 1e-9
    gate_metric = _by_class(config)[metrics.class_name("slice_gate_hierarchical_f1")]
    top = [t for t in gate_metric.per_slice_thresholds if list(t.slicing_specs[0].feature_keys) == ["level_1"]][0]
    assert abs(top.threshold.change_threshold.absolute.value + 0.05) < 1e-9
    assert [m.name for m in config.model_specs] == ["candidate", "baseline"]
    keys = {tuple(s.feature_keys) for s in config.slicing_specs}
    assert {(), ("level_1",), ("has_image",), ("gender",), ("season",), ("usage",)} <= keys
