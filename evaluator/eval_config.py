"""The TFMA EvalConfig: hierarchical metrics with intervals, slices, and the gate.

`PathMetrics` (evaluator/metrics.py) reports every value per slice for each model and the
paired difference, each with its confidence interval and the slice's example count. The
gate (`schema.config.Gate`, rule in evaluator/stats.py and docs/design.md) is a set of named
gate metrics, each a float with a plain TFMA value threshold:

- floors on the candidate (overall): hF1 of the decoded path, leaf accuracy;
- with a baseline, the win (overall): the lower confidence bound of the paired
  leaf-accuracy gain >= `min_gain`;
- with a baseline, no significant loss beyond a tolerance: leaf accuracy on every
  top-level category slice, coverage at the shared precision target overall.

A value threshold is always set (TFX writes no blessing without one).
"""
from __future__ import annotations

import json
from typing import Optional

import tensorflow_model_analysis as tfma

from evaluator import metrics
from schema import features
from schema.catalog_spec import CatalogSpec
from schema.config import Gate

MODULE = metrics.__name__
GATE_SLICE_COLUMN = features.level_feature(1)  # slices the per-slice gate judges


def _at_least(lower: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower}))


def _metric(class_name: str, config: dict, overall: Optional[tfma.MetricThreshold] = None,
            per_slice: Optional[tfma.PerSliceMetricThreshold] = None) -> tfma.MetricConfig:
    """`overall` gates the overall slice only (a MetricConfig.threshold would gate every
    slice); `per_slice` adds a gate on other slices."""
    out = tfma.MetricConfig(class_name=class_name, module=MODULE, config=json.dumps(config))
    if overall is not None:
        out.per_slice_thresholds.append(
            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=overall))
    if per_slice is not None:
        out.per_slice_thresholds.append(per_slice)
    return out


def slicing_specs(spec: CatalogSpec) -> list[tfma.SlicingSpec]:
    slices = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[GATE_SLICE_COLUMN])]
    slices.append(tfma.SlicingSpec(feature_keys=[features.HAS_IMAGE]))
    slices += [tfma.SlicingSpec(feature_keys=[col]) for col in spec.slice_columns]
    return slices


def build_eval_config(spec: CatalogSpec, depth: int, gate: Gate, with_baseline: bool) -> tfma.EvalConfig:
    """`with_baseline` adds the baseline model spec and the comparisons with it."""
    common = {"depth": depth, "confidence": gate.confidence}
    gate_class = {name: cls.__name__ for name, cls in metrics.GATE_CLASSES.items()}
    metric_configs = [
        _metric(metrics.PathMetrics.__name__, common),
        _metric(gate_class["gate_floor_full_path_hierarchical_f1"], common,
                _at_least(gate.min_full_path_hierarchical_f1)),
        _metric(gate_class["gate_floor_leaf_accuracy"], common, _at_least(gate.min_leaf_accuracy)),
    ]
    if with_baseline:
        metric_configs += [
            _metric(gate_class["gate_win_leaf_accuracy"], common, _at_least(gate.min_gain)),
            _metric(gate_class["gate_coverage"], {**common, "tolerance": gate.coverage_tolerance}, _at_least(0.0)),
            _metric(gate_class["gate_slice_leaf_accuracy"], {**common, "tolerance": gate.slice_tolerance},
                    per_slice=tfma.PerSliceMetricThreshold(
                        slicing_specs=[tfma.SlicingSpec(feature_keys=[GATE_SLICE_COLUMN])],
                        threshold=_at_least(0.0))),
        ]
    model_specs = [tfma.ModelSpec(name="candidate", signature_name="serving_default",
                                  label_key=features.CATEGORY_PATH)]
    if with_baseline:
        model_specs.append(tfma.ModelSpec(name="baseline", signature_name="serving_default",
                                          label_key=features.CATEGORY_PATH, is_baseline=True))
    return tfma.EvalConfig(
        model_specs=model_specs,
        slicing_specs=slicing_specs(spec),
        metrics_specs=[tfma.MetricsSpec(metrics=metric_configs)],
    )
