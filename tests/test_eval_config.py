import json

from evaluator import metrics
from evaluator.eval_config import build_eval_config
from schema.catalog_spec import load_spec
from schema.config import Gate


def _by_class(config):
    return {m.class_name: m for m in config.metrics_specs[0].metrics}


def test_every_metric_class_is_importable_and_registered():
    config = build_eval_config(load_spec("fashion"), 3, Gate(), with_baseline=True)
    for metric in config.metrics_specs[0].metrics:
        assert metric.module == "evaluator.metrics"
        cls = getattr(metrics, metric.class_name)
        assert cls(**json.loads(metric.config)).name  # TFMA builds each from its config
    assert "PathMetrics" in _by_class(config)
    assert {"accuracy_level_3", "coverage_level_2", "leaf_accuracy", "full_path_hierarchical_f1"} <= set(
        metrics.metric_names(3))


def _overall_bound(metric):
    overall = [t for t in metric.per_slice_thresholds if not t.slicing_specs[0].feature_keys]
    return overall[0].threshold.value_threshold.lower_bound.value


def test_gate_settings_reach_the_thresholds():
    gate = Gate(min_full_path_hierarchical_f1=0.6, min_gain=0.01, slice_tolerance=0.07, coverage_tolerance=0.02,
                confidence=0.9)
    config = build_eval_config(load_spec("fashion"), 3, gate, with_baseline=True)
    by_class = _by_class(config)
    assert _overall_bound(by_class["GateFloorFullPathHierarchicalF1"]) == 0.6
    assert _overall_bound(by_class["GateWinLeafAccuracy"]) == 0.01
    slice_gate = by_class["GateSliceLeafAccuracy"]
    assert not slice_gate.HasField("threshold")  # only the top-level slices are gated
    (per_slice,) = slice_gate.per_slice_thresholds
    assert list(per_slice.slicing_specs[0].feature_keys) == ["level_1"]
    assert json.loads(slice_gate.config)["tolerance"] == 0.07
    assert json.loads(by_class["GateCoverage"].config)["tolerance"] == 0.02
    assert all(json.loads(m.config)["confidence"] == 0.9 for m in by_class.values())
    assert [m.name for m in config.model_specs] == ["candidate", "baseline"]
    keys = {tuple(s.feature_keys) for s in config.slicing_specs}
    assert {(), ("level_1",), ("has_image",), ("gender",), ("season",), ("usage",)} <= keys


def test_without_a_baseline_only_the_floors_gate():
    config = build_eval_config(load_spec("fashion"), 3, Gate(), with_baseline=False)
    assert set(_by_class(config)) == {"PathMetrics", "GateFloorFullPathHierarchicalF1", "GateFloorLeafAccuracy"}
