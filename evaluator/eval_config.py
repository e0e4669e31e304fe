"""The TFMA EvalConfig: hierarchical metrics, slices, and the thresholds that bless.

A value threshold is always set (TFX writes no blessing without one), so even the first
run's model has to reach absolute floors; change thresholds against the baseline apply
whenever a baseline model is given to the Evaluator.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow_model_analysis as tfma

from evaluator import metrics
from schema import features
from schema.catalog_spec import CatalogSpec

MODULE = metrics.__name__


@dataclasses.dataclass(frozen=True)
class Gate:
    """What a candidate must reach to be blessed (and so pushed)."""

    min_hierarchical_f1: float = 0.5
    min_leaf_accuracy: float = 0.3
    # Candidate must beat the baseline's hF1 by at least this much (absolute). TFMA checks
    # `diff >= margin`, so the default is a hair above 0: a tie (the same model evaluated
    # again on an unchanged catalog) is not a win and is not pushed again.
    f1_margin_over_baseline: float = 1e-6
    # Coverage may not drop by more than this versus the baseline.
    coverage_tolerance: float = 0.0
    # No top-level slice may lose more than this hF1 versus the baseline.
    slice_tolerance: float = 0.05
    # Top-level slices with fewer labelled eval products are not gated (see
    # metrics.SLICE_GATE_MIN_PRODUCTS): one product would swing a 5-product slice by 0.2.


def _value_threshold(lower: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower}))


def _change_threshold(margin: float) -> tfma.GenericChangeThreshold:
    # Higher is better: candidate minus baseline must be at least `margin` (negative = a
    # tolerated loss).
    return tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": margin}
    )


def _metric(name: str, threshold: Optional[tfma.MetricThreshold] = None,
            per_slice: Optional[list] = None) -> tfma.MetricConfig:
    """`threshold` gates the overall slice only (a MetricConfig.threshold would gate every
    slice, and a 3-product slice would veto the model); `per_slice` adds slice gates."""
    config = tfma.MetricConfig(class_name=metrics.class_name(name), module=MODULE)
    if threshold is not None:
        config.per_slice_thresholds.append(
            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold))
    for item in per_slice or []:
        config.per_slice_thresholds.append(item)
    return config


def slicing_specs(spec: CatalogSpec) -> list[tfma.SlicingSpec]:
    slices = [tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.level_feature(1)])]
    slices.append(tfma.SlicingSpec(feature_keys=[features.HAS_IMAGE]))
    slices += [tfma.SlicingSpec(feature_keys=[col]) for col in spec.slice_columns]
    return slices


def build_eval_config(spec: CatalogSpec, depth: int, gate: Gate, with_baseline: bool) -> tfma.EvalConfig:
    """`with_baseline` adds the baseline model spec and the change thresholds."""
    f1 = _value_threshold(gate.min_hierarchical_f1)
    coverage = None
    slice_thresholds = []
    if with_baseline:
        f1.change_threshold.CopyFrom(_change_threshold(gate.f1_margin_over_baseline))
        coverage = tfma.MetricThreshold(change_threshold=_change_threshold(-gate.coverage_tolerance))
        slice_threshold = tfma.MetricThreshold(change_threshold=_change_threshold(-gate.slice_tolerance))
        slice_thresholds.append(tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec(feature_keys=[features.level_feature(1)])],
            threshold=slice_threshold))
    metric_configs = []
    for name in metrics.metric_names(depth):
        if name == "hierarchical_f1":
            metric_configs.append(_metric(name, f1))
        elif name == "slice_gate_hierarchical_f1":
            metric_configs.append(_metric(name, per_slice=slice_thresholds))
        elif name == "leaf_accuracy":
            metric_configs.append(_metric(name, _value_threshold(gate.min_leaf_accuracy)))
        elif name == "coverage" and coverage is not None:
            metric_configs.append(_metric(name, coverage))
        else:
            metric_configs.append(_metric(name))
    model_specs = [tfma.ModelSpec(name="candidate", signature_name="serving_default",
                                  label_key=features.CATEGORY_PATH)]
    if with_baseline:
        model_specs.append(tfma.ModelSpec(name="baseline", signature_name="serving_default",
                                          label_key=features.CATEGORY_PATH, is_baseline=True))
    config = tfma.EvalConfig(
        model_specs=model_specs,
        slicing_specs=slicing_specs(spec),
        metrics_specs=[tfma.MetricsSpec(metrics=metric_configs)],
    )
    return config

