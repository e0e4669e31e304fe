"""Hierarchical TFMA metrics over category paths.

Labels are the raw `category_path` feature; predictions are the serving outputs (the
thresholded `category_path` and the decoded `full_path`). Paths are augmented with all
their ancestors (Kiritchenko et al.): hP = sum|P n T| / sum|P|, hR = sum|P n T| / sum|T|,
micro-averaged over products.

`PathMetrics` is one combiner over all models of the evaluation: it keeps each labelled
product's counters for every model side by side (so the models stay paired) and emits,
per slice, every value of VALUES for each model and the candidate-minus-baseline
difference (a TFMA diff key), each as a BoundedValue, which TFMA writes as the value plus
its `confidence_interval` (evaluator/stats.py), and the slice's `example_count`.

The gate's checks are thin named metrics (`gate_*`, GATE_CLASSES): TFMA binds a threshold
only to the key named after the metric and its validator reads floats, so each is a
DerivedMetricComputation turning PathMetrics' intervals into one float with a plain value
threshold (evaluator/eval_config.py). Their base computation is PathMetrics' own, which
TFMA de-duplicates (same combiner class and keys), so the products are combined once: one
accumulator, one pass, every value (tests/test_metrics.py counts the combiner's inputs on
a real TFMA run). TFMA keeps the first of identical computations, so every metric class of
an EvalConfig must be given the same depth and confidence (eval_config.py passes one set).
"""
from __future__ import annotations

import collections
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import apache_beam as beam
import numpy as np
from google.protobuf import wrappers_pb2
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import metrics_for_slice_pb2

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


def example_counters(true_path: str, predicted: str, full: str) -> Dict[str, float]:
    """One product's contribution to every counter (COUNTERS), for one model."""
    truth = ancestors(true_path)
    pred = ancestors(predicted)
    full_anc = ancestors(full)
    t_set, p_set, f_set = set(truth), set(pred), set(full_anc)
    c: Dict[str, float] = {
        "n": 1.0,
        "inter": len(t_set & p_set),
        "pred_nodes": len(p_set),
        "true_nodes": len(t_set),
        "full_inter": len(t_set & f_set),
        "full_pred_nodes": len(f_set),
        "covered": float(bool(predicted)),
        "node_correct": float(bool(predicted) and predicted in t_set),
        "leaf_predicted": float(bool(predicted) and predicted == full),
        "leaf_predicted_correct": float(bool(predicted) and predicted == full and predicted == true_path),
        "exact": float(predicted == true_path),
        "full_exact": float(full == true_path),
    }
    for k in range(1, len(truth) + 1):
        c[f"true_at_{k}"] = 1.0
        c[f"full_correct_at_{k}"] = float(k <= len(full_anc) and full_anc[k - 1] == truth[k - 1])
    for k in range(1, len(pred) + 1):
        c[f"covered_at_{k}"] = 1.0
    return c


COUNTERS: List[str] = ["n", "inter", "pred_nodes", "true_nodes", "full_inter", "full_pred_nodes", "covered",
                       "node_correct", "leaf_predicted", "leaf_predicted_correct", "exact", "full_exact"]
COUNTERS += [f"{kind}_{k}" for k in range(1, MAX_LEVELS + 1)
             for kind in ("true_at", "full_correct_at", "covered_at")]
_COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}


def counter_vector(true_path: str, predicted: str, full: str) -> np.ndarray:
    row = np.zeros(len(COUNTERS), np.float32)
    for name, value in example_counters(true_path, predicted, full).items():
        row[_COUNTER_INDEX[name]] = value
    return row


class PathStats:
    """Sufficient statistics for every metric in this module (additive, mergeable)."""

    __slots__ = ["c"]

    def __init__(self):
        self.c: collections.Counter = collections.Counter()

    def add(self, true_path: str, predicted: str, full: str, weight: float = 1.0) -> None:
        for name, value in example_counters(true_path, predicted, full).items():
            self.c[name] += weight * value

    def merge(self, other: "PathStats") -> "PathStats":
        self.c.update(other.c)
        return self


def _ratio(num, den):
    """num / den, NaN where den is 0; floats in, float out; arrays in, array out."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def _f1(p, r):
    p, r = np.asarray(p, np.float64), np.asarray(r, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1.0), 0.0)  # nothing right: 0
    f = np.where(np.isnan(r), np.nan, np.where(np.isnan(p), 0.0, f))  # nothing predicted: 0
    return float(f) if f.ndim == 0 else f


def _hp(c):
    return _ratio(c["inter"], c["pred_nodes"])


def _hr(c):
    return _ratio(c["inter"], c["true_nodes"])


def _hf1(c):
    return _f1(_hp(c), _hr(c))


def _full_hf1(c):
    return _f1(_ratio(c["full_inter"], c["full_pred_nodes"]), _ratio(c["full_inter"], c["true_nodes"]))


# name -> (value from the counters, human description). The description feeds the report.
# Values take a Counter (floats) or a dict of arrays (bootstrap replicates).
VALUES: Dict[str, tuple[Callable[[Mapping[str, Any]], Any], str]] = {
    "full_path_hierarchical_f1": (_full_hf1, "hF1 of the decoded path before thresholds: ranking quality"),
    "leaf_accuracy": (lambda c: _ratio(c["full_exact"], c["n"]),
                      "share whose decoded path (no thresholding) equals the true path"),
    "coverage": (lambda c: _ratio(c["covered"], c["n"]),
                 "share of products that get a path after the model's thresholds (same precision target)"),
    "node_precision": (lambda c: _ratio(c["node_correct"], c["covered"]),
                       "share of returned paths that are the true path or one of its ancestors"),
    "hierarchical_precision": (_hp, "hP of the returned (thresholded) path, ancestors included"),
    "hierarchical_recall": (_hr, "hR of the returned (thresholded) path: an abstention is lost recall"),
    "hierarchical_f1": (_hf1, "harmonic mean of hP and hR of the returned path (depends on the thresholds)"),
    "leaf_precision": (lambda c: _ratio(c["leaf_predicted_correct"], c["leaf_predicted"]),
                       "of products given their full decoded path, share exactly right"),
    "leaf_recall": (lambda c: _ratio(c["exact"], c["n"]), "share of all products given exactly their true path"),
}
# Metrics that are a share of products with a 0/1 outcome each: (outcome, denominator)
# counters. They get exact intervals (evaluator/stats.py); the rest are bootstrapped.
PROPORTIONS: Dict[str, tuple[str, str]] = {
    "leaf_accuracy": ("full_exact", "n"),
    "coverage": ("covered", "n"),
    "leaf_recall": ("exact", "n"),
}
for _k in range(1, MAX_LEVELS + 1):
    VALUES[f"accuracy_level_{_k}"] = (
        (lambda k: lambda c: _ratio(c[f"full_correct_at_{k}"], c[f"true_at_{k}"]))(_k),
        f"level-{_k} node of the decoded path is right (products with a level {_k})",
    )
    VALUES[f"coverage_level_{_k}"] = (
        (lambda k: lambda c: _ratio(c[f"covered_at_{k}"], c["n"]))(_k),
        f"share of products whose returned path reaches level {_k}",
    )
    PROPORTIONS[f"accuracy_level_{_k}"] = (f"full_correct_at_{_k}", f"true_at_{_k}")
    PROPORTIONS[f"coverage_level_{_k}"] = (f"covered_at_{_k}", "n")
# Counters the bootstrapped (non-proportion) values read.
_BOOTSTRAP_COUNTERS = ("inter", "pred_nodes", "true_nodes", "full_inter", "full_pred_nodes", "covered",
                       "node_correct", "leaf_predicted", "leaf_predicted_correct")
EXAMPLE_COUNT = "example_count"


def _predicted_paths(preds: Any) -> tuple[str, str]:
    """(thresholded path, decoded full path) from one model's serving outputs."""
    if isinstance(preds, dict):
        predicted = _as_str(preds.get(features.OUT_PATH))
        return predicted, _as_str(preds.get(features.OUT_FULL_PATH, preds.get(features.OUT_PATH)))
    predicted = _as_str(preds)
    return predicted, predicted


def model_roles(eval_config: Optional[Any], model_names: Sequence[str]) -> tuple[list[str], Optional[str]]:
    """(model names in evaluation order, the baseline's name or None)."""
    names = [m for m in (model_names or [""])]
    baseline = None
    if eval_config is not None:
        for spec in eval_config.model_specs:
            if spec.is_baseline and spec.name in names:
                baseline = spec.name
    return names, baseline


class _PathMetricsCombiner(beam.CombineFn):
    """Keeps every labelled product's counters for every model side by side (one row per
    product, so the models stay paired) and turns them into values with intervals."""

    def __init__(self, model_names: Sequence[str], baseline: Optional[str], value_names: Sequence[str],
                 confidence: float, example_weighted: bool):
        self._models = list(model_names)
        self._baseline = baseline
        self._names = list(value_names)
        self._confidence = confidence
        self._weighted = example_weighted

    def create_accumulator(self) -> list:
        return []

    def add_input(self, acc: list, element: metric_types.StandardMetricInputs) -> list:
        label = _as_str(element.get_by_key("labels", self._models[0] or None))
        if not label:
            return acc
        rows = []
        for model in self._models:
            predicted, full = _predicted_paths(element.get_by_key("predictions", model or None))
            rows.append(counter_vector(label, predicted, full))
        acc.append(np.stack(rows))
        return acc

    def merge_accumulators(self, accs: Iterable[list]) -> list:
        out: list = []
        for acc in accs:
            out.extend(acc)
        return out

    def _key(self, name: str, model: str, is_diff: bool = False) -> metric_types.MetricKey:
        return metric_types.MetricKey(name=name, model_name=model, example_weighted=self._weighted,
                                      is_diff=is_diff)

    def extract_output(self, acc: list) -> Dict[metric_types.MetricKey, Any]:
        from evaluator import stats

        rows = np.stack(acc) if acc else np.zeros((0, len(self._models), len(COUNTERS)), np.float32)
        n = rows.shape[0]
        weights = stats.poisson_weights(n)
        per_model = {}
        for m, model in enumerate(self._models):
            counters = {name: rows[:, m, i].astype(np.float64) for i, name in enumerate(COUNTERS)}
            totals = {name: float(v.sum()) for name, v in counters.items()}
            replicates = stats.replicate({name: counters[name] for name in _BOOTSTRAP_COUNTERS}, weights)
            per_model[model] = (counters, totals, replicates)
        out: Dict[metric_types.MetricKey, Any] = {}
        for model in self._models:
            out[self._key(EXAMPLE_COUNT, model)] = float(n)
        candidates = [m for m in self._models if m != self._baseline]
        for name in self._names:
            fn = VALUES[name][0]
            for model in self._models:
                counters, totals, replicates = per_model[model]
                if name in PROPORTIONS:
                    num, den = PROPORTIONS[name]
                    interval = stats.clopper_pearson(totals[num], totals[den], self._confidence)
                else:
                    interval = stats.bootstrap_interval(fn, totals, replicates, self._confidence)
                out[self._key(name, model)] = bounded(interval)
            if self._baseline is None:
                continue
            base_counters, base_totals, base_replicates = per_model[self._baseline]
            for model in candidates:
                counters, totals, replicates = per_model[model]
                if name in PROPORTIONS:
                    num, den = PROPORTIONS[name]
                    rows_in = counters[den] > 0
                    diff = stats.paired_proportion_difference(counters[num][rows_in] > 0,
                                                              base_counters[num][rows_in] > 0, self._confidence)
                else:
                    diff = stats.bootstrap_interval(fn, totals, replicates, self._confidence,
                                                    baseline=(base_totals, base_replicates))
                out[self._key(name, model, is_diff=True)] = bounded(diff)
        return out


def bounded(interval) -> metrics_for_slice_pb2.BoundedValue:
    """An interval as TFMA's BoundedValue: written as the value plus its confidence_interval."""
    return metrics_for_slice_pb2.BoundedValue(
        value=wrappers_pb2.DoubleValue(value=interval.value),
        lower_bound=wrappers_pb2.DoubleValue(value=interval.lower),
        upper_bound=wrappers_pb2.DoubleValue(value=interval.upper),
        methodology=metrics_for_slice_pb2.BoundedValue.POISSON_BOOTSTRAP,
    )


def interval_of(value: Any):
    """A BoundedValue (as the combiner emits it) back as an `evaluator.stats.Interval`."""
    from evaluator import stats

    return stats.Interval(value.value.value, value.lower_bound.value, value.upper_bound.value)


def _base_computation(eval_config, model_names, depth: int, confidence: float,
                      example_weighted: bool) -> tuple[metric_types.MetricComputation, list[str], Optional[str]]:
    models, baseline = model_roles(eval_config, model_names)
    names = metric_names(depth)
    keys = [metric_types.MetricKey(name=EXAMPLE_COUNT, model_name=m, example_weighted=example_weighted)
            for m in models]
    computation = metric_types.MetricComputation(
        keys=keys, preprocessors=None,
        combiner=_PathMetricsCombiner(models, baseline, names, confidence, example_weighted))
    return computation, models, baseline


def _path_metrics_computations(name: str = "path_metrics", depth: int = 3, confidence: float = 0.95,
                               eval_config: Optional[Any] = None, model_names: Optional[List[str]] = None,
                               output_names: Optional[List[str]] = None, sub_keys: Optional[Any] = None,
                               aggregation_type: Optional[Any] = None, class_weights: Optional[Any] = None,
                               example_weighted: bool = False, query_key: Optional[str] = None
                               ) -> metric_types.MetricComputations:
    computation, _, _ = _base_computation(eval_config, model_names, depth, confidence, example_weighted)
    return [computation]


class PathMetrics(metric_types.Metric):
    """Every value of VALUES, per model, with its interval, and the paired difference
    candidate minus baseline (TFMA keys with is_diff), plus the labelled example count."""

    def __init__(self, name: str = "path_metrics", depth: int = 3, confidence: float = 0.95):
        super().__init__(_path_metrics_computations, name=name, depth=depth, confidence=confidence)


metric_types.register_metric(PathMetrics)


# ---------------------------------------------------------------------------- the gate
# Each gate value is its own named metric (TFMA binds a threshold to the key named after
# the metric), a float derived from PathMetrics' output (TFMA's validator reads floats).

def _gate_value(kind: str, interval_of_key: Callable, tolerance: float) -> float:
    from evaluator import stats

    if kind == "floor_full_path_hierarchical_f1":
        return interval_of_key("full_path_hierarchical_f1", False).value
    if kind == "floor_leaf_accuracy":
        return interval_of_key("leaf_accuracy", False).value
    if kind == "win_leaf_accuracy":
        return stats.win_value(interval_of_key("leaf_accuracy", True))
    if kind == "slice_leaf_accuracy":
        return stats.block_value(interval_of_key("leaf_accuracy", True), tolerance)
    if kind == "coverage":
        return stats.block_value(interval_of_key("coverage", True), tolerance)
    raise ValueError(f"unknown gate value {kind!r}")


GATE_KINDS = ("floor_full_path_hierarchical_f1", "floor_leaf_accuracy", "win_leaf_accuracy",
              "slice_leaf_accuracy", "coverage")


def _gate_computations(kind: str, name: str, depth: int = 3, confidence: float = 0.95, tolerance: float = 0.0,
                       eval_config: Optional[Any] = None, model_names: Optional[List[str]] = None,
                       example_weighted: bool = False, **_unused) -> metric_types.MetricComputations:
    base, models, baseline = _base_computation(eval_config, model_names, depth, confidence, example_weighted)
    keys = [metric_types.MetricKey(name=name, model_name=m, example_weighted=example_weighted)
            for m in models if m != baseline]

    def result(metrics: Dict[metric_types.MetricKey, Any]) -> Dict[metric_types.MetricKey, float]:
        out = {}
        for key in keys:
            def lookup(value_name: str, is_diff: bool, model=key.model_name):
                value = metrics.get(metric_types.MetricKey(name=value_name, model_name=model,
                                                           example_weighted=example_weighted, is_diff=is_diff))
                if value is None:
                    from evaluator import stats
                    return stats.NAN_INTERVAL
                return interval_of(value)
            out[key] = float(_gate_value(kind, lookup, tolerance))
        return out

    result.__name__ = f"gate_{kind}_result"
    return [base, metric_types.DerivedMetricComputation(keys=keys, result=result)]


def _gate_metric_class(kind: str) -> type:
    metric_name = f"gate_{kind}"
    class_name = "Gate" + "".join(part.title() for part in kind.split("_"))

    def computations(name: str = metric_name, depth: int = 3, confidence: float = 0.95, tolerance: float = 0.0,
                     eval_config: Optional[Any] = None, model_names: Optional[List[str]] = None,
                     output_names: Optional[List[str]] = None, sub_keys: Optional[Any] = None,
                     aggregation_type: Optional[Any] = None, class_weights: Optional[Any] = None,
                     example_weighted: bool = False, query_key: Optional[str] = None):
        return _gate_computations(kind, name, depth, confidence, tolerance, eval_config, model_names,
                                  example_weighted)

    def __init__(self, name: str = metric_name, depth: int = 3, confidence: float = 0.95, tolerance: float = 0.0):
        metric_types.Metric.__init__(self, computations, name=name, depth=depth, confidence=confidence,
                                     tolerance=tolerance)

    cls = type(class_name, (metric_types.Metric,), {"__init__": __init__, "__module__": __name__})
    metric_types.register_metric(cls)
    return cls


GATE_CLASSES: Dict[str, type] = {}
for _kind in GATE_KINDS:
    GATE_CLASSES[f"gate_{_kind}"] = _gate_metric_class(_kind)
    globals()[GATE_CLASSES[f"gate_{_kind}"].__name__] = GATE_CLASSES[f"gate_{_kind}"]


def metric_names(depth: int) -> list[str]:
    """The values an evaluation of a `depth`-level taxonomy reports (each with its interval)."""
    base = [n for n in VALUES if not n.startswith(("accuracy_level_", "coverage_level_"))]
    levels = [f"accuracy_level_{k}" for k in range(1, depth + 1)]
    levels += [f"coverage_level_{k}" for k in range(1, depth + 1)]
    return base + levels
