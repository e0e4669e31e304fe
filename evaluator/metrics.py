"""Hierarchical TFMA metrics over category paths.

Labels are the raw `category_path` feature; predictions are the serving outputs (the
thresholded `category_path` and the decoded `full_path`). Paths are augmented with all
their ancestors (Kiritchenko et al.): hP = sum|P n T| / sum|P|, hR = sum|P n T| / sum|T|,
micro-averaged over products.

Every value is its own named `tfma.metrics.Metric`, because TFMA binds a threshold only
to the key named after the metric; each is computed per model, so the candidate versus
baseline differences exist. One shared accumulator keeps the combiners tiny.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Callable, Dict, Iterable, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

from schema import features
from schema.taxonomy import ancestors

MAX_LEVELS = 8


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)
        value = value[0] if value.size else b""
    elif isinstance(value, (list, tuple)):
        value = value[0] if value else b""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class PathStats:
    """Sufficient statistics for every metric in this module (additive, mergeable)."""

    __slots__ = ["c"]

    def __init__(self):
        self.c: collections.Counter = collections.Counter()

    def add(self, true_path: str, predicted: str, full: str, weight: float = 1.0) -> None:
        c = self.c
        truth = ancestors(true_path)
        pred = ancestors(predicted)
        t_set, p_set = set(truth), set(pred)
        c["n"] += weight
        c["inter"] += weight * len(t_set & p_set)
        c["pred_nodes"] += weight * len(p_set)
        c["true_nodes"] += weight * len(t_set)
        if predicted:
            c["covered"] += weight
            c["node_correct"] += weight * (predicted in t_set)
            if predicted == full:
                c["leaf_predicted"] += weight
                c["leaf_predicted_correct"] += weight * (predicted == true_path)
        c["exact"] += weight * (predicted == true_path)
        c["full_exact"] += weight * (full == true_path)
        full_anc = ancestors(full)
        for k in range(1, len(truth) + 1):
            c[f"true_at_{k}"] += weight
            c[f"full_correct_at_{k}"] += weight * (k <= len(full_anc) and full_anc[k - 1] == truth[k - 1])
        for k in range(1, len(pred) + 1):
            c[f"covered_at_{k}"] += weight

    def merge(self, other: "PathStats") -> "PathStats":
        self.c.update(other.c)
        return self


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _hp(c):
    return _ratio(c["inter"], c["pred_nodes"])


def _hr(c):
    return _ratio(c["inter"], c["true_nodes"])


def _hf1(c):
    p, r = _hp(c), _hr(c)
    if math.isnan(r) or math.isnan(p) or p + r == 0:
        return 0.0 if not math.isnan(r) else float("nan")  # nothing predicted: F1 is 0
    return 2 * p * r / (p + r)


# name -> (value from the counters, human description). The description feeds the report.
VALUES: Dict[str, tuple[Callable[[collections.Counter], float], str]] = {
    "hierarchical_precision": (_hp, "hP: share of predicted nodes (with ancestors) that are true"),
    "hierarchical_recall": (_hr, "hR: share of true nodes (with ancestors) that are predicted"),
    "hierarchical_f1": (_hf1, "harmonic mean of hP and hR"),
    "coverage": (lambda c: _ratio(c["covered"], c["n"]), "share of products that get a path after thresholding"),
    "node_precision": (lambda c: _ratio(c["node_correct"], c["covered"]),
                       "share of returned paths that are the true path or one of its ancestors"),
    "leaf_precision": (lambda c: _ratio(c["leaf_predicted_correct"], c["leaf_predicted"]),
                       "of products given their full decoded path, share exactly right"),
    "leaf_recall": (lambda c: _ratio(c["exact"], c["n"]), "share of all products given exactly their true path"),
    "leaf_accuracy": (lambda c: _ratio(c["full_exact"], c["n"]),
                      "share whose decoded path (no thresholding) equals the true path"),
}
# TFMA gates every matching slice, tiny ones included, and fails a threshold whose metric
# is missing or NaN. This value is hF1 where the slice has enough labelled products and a
# neutral 1.0 (equal for both models, so no change) where it has too few to judge.
SLICE_GATE_MIN_PRODUCTS = 20
VALUES["slice_gate_hierarchical_f1"] = (
    lambda c: _hf1(c) if c["n"] >= SLICE_GATE_MIN_PRODUCTS else 1.0,
    f"hF1 for the per-slice gate; 1.0 (not gated) below {SLICE_GATE_MIN_PRODUCTS} products",
)
for _k in range(1, MAX_LEVELS + 1):
    VALUES[f"accuracy_level_{_k}"] = (
        (lambda k: lambda c: _ratio(c[f"full_correct_at_{k}"], c[f"true_at_{k}"]))(_k),
        f"level-{_k} node of the decoded path is right (products with a level {_k})",
    )
    VALUES[f"coverage_level_{_k}"] = (
        (lambda k: lambda c: _ratio(c[f"covered_at_{k}"], c["n"]))(_k),
        f"share of products whose returned path reaches level {_k}",
    )


class _PathCombiner(beam.CombineFn):
    def __init__(self, key: metric_types.MetricKey, value_name: str):
        self._key = key
        self._value_name = value_name

    def create_accumulator(self) -> PathStats:
        return PathStats()

    def add_input(self, acc: PathStats, element: metric_types.StandardMetricInputs) -> PathStats:
        label = _as_str(element.get_by_key("labels", self._key.model_name))
        preds = element.get_by_key("predictions", self._key.model_name)
        if isinstance(preds, dict):
            predicted = _as_str(preds.get(features.OUT_PATH))
            full = _as_str(preds.get(features.OUT_FULL_PATH, preds.get(features.OUT_PATH)))
        else:
            predicted = full = _as_str(preds)
        if label:
            acc.add(label, predicted, full)
        return acc

    def merge_accumulators(self, accs: Iterable[PathStats]) -> PathStats:
        accs = iter(accs)
        out = next(accs)
        for acc in accs:
            out.merge(acc)
        return out

    def extract_output(self, acc: PathStats) -> Dict[metric_types.MetricKey, float]:
        return {self._key: VALUES[self._value_name][0](acc.c)}


def _computations_fn(value_name: str) -> Callable:
    combiner_cls = type(f"_{value_name.title().replace('_', '')}Combiner", (_PathCombiner,), {})

    def computations(
        name: str = value_name,
        eval_config: Optional[Any] = None,
        model_name: str = "",
        output_name: str = "",
        sub_key: Optional[Any] = None,
        aggregation_type: Optional[Any] = None,
        class_weights: Optional[Any] = None,
        example_weighted: bool = False,
    ) -> metric_types.MetricComputations:
        key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                     example_weighted=example_weighted)
        return [metric_types.MetricComputation(keys=[key], preprocessors=None,
                                               combiner=combiner_cls(key, value_name))]

    return computations


def _metric_class(value_name: str) -> type:
    class_name = "".join(part.title() for part in value_name.split("_"))

    def __init__(self, name: str = value_name):
        metric_types.Metric.__init__(
            self, metric_util.merge_per_key_computations(_computations_fn(value_name)), name=name
        )

    cls = type(class_name, (metric_types.Metric,), {"__init__": __init__, "__module__": __name__})
    metric_types.register_metric(cls)
    return cls


METRIC_CLASSES: Dict[str, type] = {}
for _name in VALUES:
    METRIC_CLASSES[_name] = _metric_class(_name)
    globals()[METRIC_CLASSES[_name].__name__] = METRIC_CLASSES[_name]


def class_name(value_name: str) -> str:
    return METRIC_CLASSES[value_name].__name__


def metric_names(depth: int) -> list[str]:
    """The metrics an evaluation of a `depth`-level taxonomy reports."""
    base = [n for n in VALUES if not n.startswith(("accuracy_level_", "coverage_level_"))]
    levels = [f"accuracy_level_{k}" for k in range(1, depth + 1)]
    levels += [f"coverage_level_{k}" for k in range(1, depth + 1)]
    return base + levels

