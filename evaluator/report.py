"""The static review report of one pipeline run: one self-contained HTML page.

Two halves. This module is the data and the numbers, in plain Python (no TensorFlow, no
TFMA, no markup): the `ReviewReport` component reads the run's artifacts into
`ReportData`, and tests can build it by hand; the curves, operating points, confusions,
error sample, intervals and failure sentences are computed here, and `page_view` turns
them into the rows, cells and chart coordinates the page shows. The page itself is the
Jinja2 template `evaluator/templates/report.html.j2` (package data), rendered with
autoescape on, so every piece of text is HTML-escaped (titles come from merchants). The
page needs no network and no JavaScript: inline CSS, an inline SVG chart and thumbnails as
`data:` URIs.

Sections: the verdict and why (each failing threshold spelled out), metrics per slice for
candidate and baseline side by side with the differences (regressions highlighted), the
coverage-precision curve of a global threshold on the decoded path's confidence with the
operating point of the per-node thresholds, the most frequent confusions per level, and a
sample of errors.
"""
from __future__ import annotations

import base64
import collections
import dataclasses
import datetime
import functools
import io
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import jinja2

from evaluator.stats import Interval
from schema.evaluation_results import OVERALL  # the slice name the reader gives every product
from schema.taxonomy import ancestors

CANDIDATE = "candidate"
BASELINE = "baseline"
# Metrics shown for every slice in the slice summary table.
HEADLINE_METRICS = ("leaf_accuracy", "full_path_hierarchical_f1", "coverage", "node_precision")
DEFAULT_MAX_ERRORS = 50
THUMBNAIL_PX = 96
# A difference below -EPSILON on a higher-is-better metric is a regression.
EPSILON = 1e-9

DIFFERENCE = "difference"  # the paired candidate - baseline interval
EXAMPLE_COUNT = "example_count"
# slice name -> model name -> metric name -> value
Metrics = Dict[str, Dict[str, Dict[str, float]]]
# slice name -> "candidate" | "baseline" | "difference" -> metric name -> Interval
Intervals = Dict[str, Dict[str, Dict[str, "Interval"]]]


# ---------------------------------------------------------------------------- data


@dataclasses.dataclass
class Prediction:
    """One model's serving outputs for one product."""

    path: str  # `category_path`: after the per-node thresholds, "" when abstaining
    confidence: float
    full_path: str  # decoded path before thresholds
    full_confidence: float


@dataclasses.dataclass
class ExampleResult:
    id: str
    title: str
    true_path: str
    candidate: Prediction
    baseline: Optional[Prediction] = None
    has_image: bool = False
    image: bytes = b""  # encoded image; only needed for the examples the report shows


@dataclasses.dataclass
class ThresholdFailure:
    """One failed TFMA threshold. For a change threshold `value` is candidate - baseline."""

    metric: str
    slice: str
    value: float
    kind: str  # "value" or "change"
    model: str = CANDIDATE
    lower: Optional[float] = None  # value threshold bounds
    upper: Optional[float] = None
    absolute: Optional[float] = None  # change threshold bounds
    relative: Optional[float] = None
    higher_is_better: bool = True
    message: str = ""


@dataclasses.dataclass
class Validation:
    ok: Optional[bool]  # None: no validation result was found
    failures: List[ThresholdFailure] = dataclasses.field(default_factory=list)
    missing_slices: List[str] = dataclasses.field(default_factory=list)
    missing_thresholds: bool = False
    rubber_stamp: bool = False  # no baseline: change thresholds were not checked


@dataclasses.dataclass
class ReportData:
    metrics: Metrics
    validation: Validation
    examples: List[ExampleResult]
    blessed: Optional[bool] = None
    title: str = "Review report"
    context: Mapping[str, str] = dataclasses.field(default_factory=dict)  # run facts shown at the top
    max_errors: int = DEFAULT_MAX_ERRORS
    descriptions: Optional[Mapping[str, str]] = None  # metric -> description
    generated: Optional[str] = None  # timestamp text; now (UTC) when None
    intervals: Intervals = dataclasses.field(default_factory=dict)  # confidence intervals, when written
    tensorboard: Optional[str] = None  # the Trainer's TensorBoard log folder (model_run artifact)
    confidence: Optional[float] = None  # two-sided confidence of the intervals (the gate's)


# ---------------------------------------------------------------------------- paths


def is_node_correct(predicted: str, true_path: str) -> bool:
    """The returned path is the true path or one of its ancestors (node precision)."""
    return bool(predicted) and predicted in ancestors(true_path)


# ---------------------------------------------------------------------------- numbers


def _isnan(value: Optional[float]) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt(value: Optional[float], digits: int = 4) -> str:
    if _isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"


def fmt_diff(value: Optional[float], digits: int = 4) -> str:
    if _isnan(value):
        return "n/a"
    if abs(value) < EPSILON:
        return f"{0:.{digits}f}"
    return ("+" if value > 0 else "\u2212") + f"{abs(value):.{digits}f}"


def difference(candidate: Optional[float], baseline: Optional[float]) -> Optional[float]:
    if _isnan(candidate) or _isnan(baseline):
        return None
    return candidate - baseline


@dataclasses.dataclass
class CurvePoint:
    threshold: float
    coverage: float
    precision: float


def coverage_precision_curve(scores: Sequence[float], hits: Sequence[bool],
                             max_points: int = 200) -> List[CurvePoint]:
    """Sweeps a global threshold t over `scores`: a product is predicted when its score is
    >= t; coverage = predicted / all, precision = hits among predicted / predicted.

    One point per distinct score (ties enter together), thinned to about `max_points`
    (the first and last points are kept).
    """
    if len(scores) != len(hits):
        raise ValueError("scores and hits differ in length")
    n = len(scores)
    if not n:
        return []
    order = sorted(range(n), key=lambda i: -float(scores[i]))
    points: List[CurvePoint] = []
    correct = 0
    for rank, i in enumerate(order, start=1):
        correct += bool(hits[i])
        if rank < n and float(scores[order[rank]]) == float(scores[i]):
            continue  # the next product has the same score: same threshold
        points.append(CurvePoint(float(scores[i]), rank / n, correct / rank))
    if len(points) > max_points:
        step = len(points) / (max_points - 1)
        keep = sorted({int(k * step) for k in range(max_points - 1)} | {len(points) - 1})
        points = [points[k] for k in keep]
    return points


@dataclasses.dataclass
class OperatingPoint:
    """The thresholded output (`category_path`) of one model."""

    coverage: float
    node_precision: float  # returned path is the true path or an ancestor
    exact_precision: float  # returned path is the true path
    n: int


def operating_point(predictions: Sequence[Tuple[Prediction, str]]) -> OperatingPoint:
    """`predictions`: (prediction, true path) pairs of labelled products."""
    n = len(predictions)
    covered = [(p, t) for p, t in predictions if p.path]
    node = sum(is_node_correct(p.path, t) for p, t in covered)
    exact = sum(p.path == t for p, t in covered)
    nan = float("nan")
    return OperatingPoint(
        coverage=len(covered) / n if n else nan,
        node_precision=node / len(covered) if covered else nan,
        exact_precision=exact / len(covered) if covered else nan,
        n=n,
    )


def labelled(examples: Iterable[ExampleResult]) -> List[ExampleResult]:
    """Products with a true path: the ones the metrics count."""
    return [e for e in examples if e.true_path]


def confusions_per_level(examples: Sequence[ExampleResult], model: str = CANDIDATE,
                         top: int = 10) -> Dict[int, List[Tuple[str, str, int]]]:
    """level -> [(true node, predicted node, count)], most frequent first.

    Compares the decoded path (before thresholds) with the truth at each level, among
    products whose node one level up was right, so a level-1 mistake is counted once (at
    level 1) and not again at every level below. A decoded path that stops above the true
    depth counts as the predicted node "(stopped)".
    """
    counts: Dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for e in labelled(examples):
        pred = e.candidate if model == CANDIDATE else e.baseline
        if pred is None:
            continue
        truth, decoded = ancestors(e.true_path), ancestors(pred.full_path)
        for k, true_node in enumerate(truth, start=1):
            predicted = decoded[k - 1] if k <= len(decoded) else "(stopped)"
            if predicted != true_node:
                counts[k][(true_node, predicted)] += 1
                break
    out = {}
    for k in sorted(counts):
        ranked = sorted(counts[k].items(), key=lambda item: (-item[1], item[0]))
        out[k] = [(t, p, c) for (t, p), c in ranked[:top]]
    return out


WRONG = "wrong"  # the returned path is not the true path nor one of its ancestors
BACKED_OFF = "backed off"  # the decoded path is wrong, the thresholds held it back


def error_kind(e: ExampleResult) -> Optional[str]:
    if not e.true_path:
        return None
    if e.candidate.path and not is_node_correct(e.candidate.path, e.true_path):
        return WRONG
    if e.candidate.full_path != e.true_path:
        return BACKED_OFF
    return None


def select_errors(examples: Sequence[ExampleResult], max_errors: int) -> List[ExampleResult]:
    """Wrong returned paths first (most confident first), then decoded-path errors that the
    thresholds backed off from (most confident decoded path first); at most `max_errors`.
    Deterministic, so two reports of the same run show the same products."""
    wrong = [e for e in examples if error_kind(e) == WRONG]
    backed = [e for e in examples if error_kind(e) == BACKED_OFF]
    wrong.sort(key=lambda e: (-e.candidate.confidence, e.id))
    backed.sort(key=lambda e: (-e.candidate.full_confidence, e.id))
    return (wrong + backed)[: max(0, max_errors)]


# ---------------------------------------------------------------------------- images


_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image_type(data: bytes) -> Optional[str]:
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def thumbnail_data_uri(data: bytes, max_px: int = THUMBNAIL_PX) -> Optional[str]:
    """A small JPEG of the image as a data: URI; None when the bytes are not an image.

    Scaled down with Pillow when it is installed; otherwise the original bytes of a known
    image type are embedded as they are."""
    if not data:
        return None
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is in the venv
        mime = sniff_image_type(data)
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}" if mime else None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((max_px, max_px))
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=80)
    except Exception:  # corrupt or unknown bytes: no thumbnail rather than no report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------- text


def _num(value: float) -> str:
    return f"{value + 0.0:g}"  # + 0.0: no "-0"


def _bound_text(f: ThresholdFailure) -> str:
    if f.kind == "value":
        parts = []
        if f.lower is not None and not math.isinf(f.lower):
            parts.append(f"\u2265 {_num(f.lower)}")
        if f.upper is not None and not math.isinf(f.upper):
            parts.append(f"\u2264 {_num(f.upper)}")
        return " and ".join(parts) or "within its bounds"
    op = "\u2265" if f.higher_is_better else "\u2264"
    parts = []
    if f.absolute is not None:
        parts.append(f"{op} {_num(f.absolute)} (absolute)")
    if f.relative is not None:
        parts.append(f"{op} {_num(f.relative)} (relative to the baseline)")
    return " and ".join(parts) or "within its bounds"


GATE_RULE = (
    "The candidate is blessed when (1) its hierarchical F1 of the decoded path and its leaf accuracy "
    "reach their floors, (2) the lower bound of the confidence interval of its leaf-accuracy gain over "
    "the baseline (decoded paths, paired over the same eval products, exact McNemar interval) reaches "
    "min_gain, so a tie is not a win, and (3) no top-level category slice loses leaf accuracy, and "
    "overall coverage at the shared precision target does not drop, significantly (the whole interval "
    "below 0) AND by more than its tolerance. Thresholded hF1 is shown, never gated: two models with "
    "different thresholds trade precision for coverage differently.")


def _gate_reason(f: ThresholdFailure, intervals: Intervals) -> Optional[str]:
    """The reviewer's sentence for a failed gate metric, from the intervals behind it."""
    here = intervals.get(f.slice, {})

    def of(who: str, metric: str) -> str:
        value = here.get(who, {}).get(metric)
        return value.text() if value is not None else "n/a"

    count = here.get(CANDIDATE, {}).get(EXAMPLE_COUNT)
    products = f", {int(count.value)} products" if count is not None else ""
    bound = _num(f.lower) if f.lower is not None else "?"
    if f.metric == "gate_win_leaf_accuracy":
        return (f"no significant win on {f.slice}: leaf accuracy {of(CANDIDATE, 'leaf_accuracy')} vs baseline "
                f"{of(BASELINE, 'leaf_accuracy')}, gain {of(DIFFERENCE, 'leaf_accuracy')}{products}; the "
                f"gain's lower bound {fmt(f.value)} must reach {bound}")
    if f.metric in ("gate_slice_leaf_accuracy", "gate_coverage"):
        metric = "leaf accuracy" if f.metric == "gate_slice_leaf_accuracy" else "coverage"
        key = "leaf_accuracy" if metric == "leaf accuracy" else "coverage"
        return (f"significant {metric} loss beyond the tolerance on {f.slice}: {of(CANDIDATE, key)} vs baseline "
                f"{of(BASELINE, key)}, difference {of(DIFFERENCE, key)}{products}")
    if f.metric.startswith("gate_floor_"):
        metric = f.metric[len("gate_floor_"):]
        return f"{metric} {of(CANDIDATE, metric)} on {f.slice} is under its floor {bound}"
    return None


def explain_failures(failures: Sequence[ThresholdFailure], intervals: Intervals) -> List[str]:
    """One sentence per failed check: the gate's own words where it is a gate metric."""
    return [_gate_reason(f, intervals) or describe_failure(f) for f in failures]


def describe_failure(f: ThresholdFailure) -> str:
    """One sentence: metric, slice, value, bound (plain text, not escaped)."""
    if f.kind == "change":
        measured = f"{f.model} \u2212 baseline = {fmt_diff(f.value)}"
        rule = f"change threshold, {'higher' if f.higher_is_better else 'lower'} is better"
    else:
        measured = f"{f.model} = {fmt(f.value)}"
        rule = "value threshold"
    text = f"{f.metric} on slice {f.slice}: {measured}, must be {_bound_text(f)} ({rule})"
    if f.message:
        text += f"; {f.message}"
    return text


# ---------------------------------------------------------------------------- ordering


def default_descriptions() -> Dict[str, str]:
    """Descriptions from evaluator.metrics (imports TFMA; {} when it cannot be imported)."""
    try:
        from evaluator import metrics
    except Exception:  # pragma: no cover
        return {}
    return {name: value[1] for name, value in metrics.VALUES.items()}


def _metric_order(names: Iterable[str], descriptions: Mapping[str, str]) -> List[str]:
    names = set(names)
    known = [n for n in descriptions if n in names]
    known_set = set(known)
    levels = [n for n in known if n.startswith(("accuracy_level_", "coverage_level_"))]
    first = [n for n in known if n not in levels]
    rest = sorted(names - known_set)
    return first + sorted(levels, key=lambda n: (n.rsplit("_", 1)[0], int(n.rsplit("_", 1)[1]))) + rest


def _slice_order(names: Iterable[str]) -> List[str]:
    def key(name: str):
        if name == OVERALL:
            return (0, "", "")
        column = name.split(" = ", 1)[0]
        rank = 1 if column == "level_1" else 2 if column == "has_image" else 3
        return (rank, column, name)

    return sorted(set(names), key=key)


# ---------------------------------------------------------------------------- the page's view
# What the template shows, computed here: cells with their formatted numbers, intervals and
# CSS classes, the chart's coordinates. The template only lays them out.


@dataclasses.dataclass
class Cell:
    """One number of a table: its text, its interval (lower, upper) when one was written,
    and its CSS classes."""

    text: str
    css: str = "num"
    ci: Optional[Tuple[float, float]] = None


def _failed_cells(failures: Sequence[ThresholdFailure]) -> Dict[Tuple[str, str], set]:
    """(slice, metric) -> kinds of the failed thresholds ("value", "change")."""
    out: Dict[Tuple[str, str], set] = collections.defaultdict(set)
    for f in failures:
        out[(f.slice, f.metric)].add(f.kind)
    return out


def _value_class(failed: bool) -> str:
    return "num failed" if failed else "num"


def _diff_class(diff: Optional[float], failed: bool) -> str:
    classes = ["num"]
    if diff is not None and diff < -EPSILON:
        classes.append("regression")
    elif diff is not None and diff > EPSILON:
        classes.append("improvement")
    if failed:
        classes.append("failed")
    return " ".join(classes)


def _confidence_text(confidence: Optional[float]) -> str:
    return f"{confidence:.0%}" if confidence else "two-sided"


def _ci(intervals: Mapping[str, Interval], name: str) -> Optional[Tuple[float, float]]:
    """(lower, upper) of a metric's interval, None when none was written."""
    value = intervals.get(name)
    if value is None or _isnan(value.lower):
        return None
    return (value.lower, value.upper)


def _model_cells(name: str, cand: Mapping[str, float], base: Mapping[str, float],
                 intervals: Mapping[str, Mapping[str, Interval]], kinds: set,
                 has_baseline: bool) -> List[Cell]:
    """candidate, and with a baseline: baseline and the difference (TFMA's paired one when
    written, else computed)."""
    c = cand.get(name)
    cells = [Cell(fmt(c), _value_class("value" in kinds), _ci(intervals.get(CANDIDATE, {}), name))]
    if has_baseline:
        b = base.get(name)
        diffs = intervals.get(DIFFERENCE, {})
        d = diffs[name].value if name in diffs else difference(c, b)
        cells.append(Cell(fmt(b), "num", _ci(intervals.get(BASELINE, {}), name)))
        cells.append(Cell(fmt_diff(d), _diff_class(d, "change" in kinds), _ci(diffs, name)))
    return cells


def _metric_table(slice_name: str, by_model: Mapping[str, Mapping[str, float]], order: Sequence[str],
                  descriptions: Mapping[str, str], has_baseline: bool, failed: Mapping,
                  intervals: Optional[Mapping[str, Mapping[str, Interval]]] = None) -> dict:
    cand, base = by_model.get(CANDIDATE, {}), by_model.get(BASELINE, {})
    rows = []
    for name in order:
        if name not in cand and name not in base:
            continue
        kinds = failed.get((slice_name, name), set())
        rows.append({"metric": name, "failed": bool(kinds), "description": descriptions.get(name, ""),
                     "cells": _model_cells(name, cand, base, intervals or {}, kinds, has_baseline)})
    return {"slice": slice_name, "rows": rows}


def _metrics_view(data: ReportData, descriptions: Mapping[str, str]) -> Optional[dict]:
    metrics = data.metrics
    if not metrics:
        return None
    has_baseline = any(BASELINE in by_model and by_model[BASELINE] for by_model in metrics.values())
    all_names = {m for by_model in metrics.values() for values in by_model.values() for m in values}
    order = _metric_order(all_names, descriptions)
    failed = _failed_cells(data.validation.failures)
    slices = _slice_order(metrics)

    def table(s: str) -> dict:
        return _metric_table(s, metrics[s], order, descriptions, has_baseline, failed, data.intervals.get(s))

    headline = [m for m in HEADLINE_METRICS if m in all_names]
    summary = []
    for s in slices:
        cand, base = metrics[s].get(CANDIDATE, {}), metrics[s].get(BASELINE, {})
        count = cand.get(EXAMPLE_COUNT)
        cells = [cell for m in headline
                 for cell in _model_cells(m, cand, base, data.intervals.get(s, {}), failed.get((s, m), set()),
                                          has_baseline)]
        summary.append({"slice": s, "count": int(count) if not _isnan(count) else "n/a", "cells": cells,
                        "failed": ", ".join(sorted(m for (slice_, m) in failed if slice_ == s))})
    details = []
    for i, s in enumerate(slices):
        if s == OVERALL:
            continue
        cand, base = metrics[s].get(CANDIDATE, {}), metrics[s].get(BASELINE, {})
        diffs = [difference(cand.get(m), base.get(m)) for m in order]
        regress = any(d is not None and d < -EPSILON for d in diffs)
        details.append({"index": i, "slice": s, "regressions": regress and has_baseline, "table": table(s)})
    return {"has_baseline": has_baseline, "confidence": _confidence_text(data.confidence),
            "overall": table(OVERALL) if OVERALL in metrics else None, "headline": headline,
            "summary": summary, "details": details}


@dataclasses.dataclass
class Chart:
    """The coverage-precision chart's geometry, in SVG user units."""

    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    x_ticks: List[Tuple[float, str]]  # (x, label)
    y_ticks: List[Tuple[float, str]]  # (y, label)
    curves: List[dict]  # label, points ("x,y x,y ..."), colour, dash
    points: List[dict]  # label, x, y, colour, coverage, precision


def chart(curves: Sequence[Tuple[str, List[CurvePoint], str, str]],
          points: Sequence[Tuple[str, float, float, str]]) -> Chart:
    """curves: (label, points, colour, dash); points: (label, coverage, precision, colour).
    The y axis starts at a round tenth at most 0.9, below every precision shown."""
    width, height = 680, 420
    left, right, top, bottom = 60, 20, 20, 50
    pw, ph = width - left - right, height - top - bottom
    ys = [p.precision for _, pts, _, _ in curves for p in pts] + [y for _, _, y, _ in points if not _isnan(y)]
    y_min = min(ys) if ys else 0.0
    y_min = max(0.0, math.floor(min(y_min, 0.9) * 10) / 10)  # at most 0.9, a round tenth

    def sx(x: float) -> float:
        return left + x * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y_min) / (1 - y_min)) * ph

    steps = int(round((1 - y_min) * 10))
    return Chart(
        width=width, height=height, left=left, top=top, plot_width=pw, plot_height=ph,
        x_ticks=[(sx(i / 10), f"{i / 10:.1f}") for i in range(11)],
        y_ticks=[(sy(y_min + i / 10), f"{y_min + i / 10:.1f}") for i in range(steps + 1)],
        curves=[{"label": label, "colour": colour, "dash": dash,
                 "points": " ".join(f"{sx(p.coverage):.1f},{sy(max(p.precision, y_min)):.1f}" for p in pts)}
                for label, pts, colour, dash in curves if pts],
        points=[{"label": label, "x": sx(x), "y": sy(max(y, y_min)), "colour": colour,
                 "coverage": fmt(x, 3), "precision": fmt(y, 3)}
                for label, x, y, colour in points if not (_isnan(x) or _isnan(y))],
    )


def _curve_view(examples: Sequence[ExampleResult]) -> Optional[dict]:
    rows = labelled(examples)
    if not rows:
        return None
    models = [(CANDIDATE, "#0969da", [e.candidate for e in rows])]
    if all(e.baseline is not None for e in rows):
        models.append((BASELINE, "#6e7781", [e.baseline for e in rows]))
    truths = [e.true_path for e in rows]
    curves, marks, table = [], [], []
    for name, colour, preds in models:
        scores = [p.full_confidence for p in preds]
        exact = coverage_precision_curve(scores, [p.full_path == t for p, t in zip(preds, truths)])
        node = coverage_precision_curve(scores, [is_node_correct(p.full_path, t) for p, t in zip(preds, truths)])
        curves.append((f"{name}: exact precision, global threshold on full_confidence", exact, colour, ""))
        curves.append((f"{name}: node precision, global threshold on full_confidence", node, colour, "6 4"))
        op = operating_point(list(zip(preds, truths)))
        marks.append((f"{name} per-node thresholds", op.coverage, op.node_precision,
                      "#fb8500" if name == CANDIDATE else "#adb5bd"))
        same = next((p for p in exact if p.coverage >= op.coverage - EPSILON), None)
        table.append({"model": name, "op": op,
                      "same": f"{fmt(same.precision)} (threshold {fmt(same.threshold, 3)})" if same else "n/a"})
    return {"products": len(rows), "legend": [(name, colour) for name, colour, _ in models],
            "chart": chart(curves, marks[::-1]),  # the candidate's dot drawn last, on top
            "operating_points": table}


def _errors_view(examples: Sequence[ExampleResult], max_errors: int) -> dict:
    rows = labelled(examples)
    chosen = select_errors(rows, max_errors)
    shown = []
    for e in chosen:
        uri = thumbnail_data_uri(e.image) if e.has_image else None
        shown.append({"example": e, "thumbnail": uri, "kind": error_kind(e)})
    return {"wrong": sum(error_kind(e) == WRONG for e in rows),
            "backed_off": sum(error_kind(e) == BACKED_OFF for e in rows),
            "has_baseline": any(e.baseline is not None for e in chosen), "shown": shown}


def _tensorboard_href(log_dir: Optional[str]) -> Optional[str]:
    if not log_dir:
        return None
    return log_dir if "://" in log_dir else "file://" + log_dir


def page_view(data: ReportData) -> dict:
    """Everything the template shows, as plain values."""
    descriptions = dict(data.descriptions) if data.descriptions is not None else default_descriptions()
    v = data.validation
    return {
        "title": data.title,
        "generated": data.generated or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "context": list(data.context.items()),
        "tensorboard": data.tensorboard, "tensorboard_href": _tensorboard_href(data.tensorboard),
        "blessed": data.blessed if data.blessed is not None else v.ok,
        "validation": v,
        "failure_lines": explain_failures(v.failures, data.intervals),
        "gate_rule": GATE_RULE,
        "disagree": data.blessed is not None and v.ok is not None and data.blessed != v.ok,
        "metrics": _metrics_view(data, descriptions),
        "curve": _curve_view(data.examples),
        "confusions": confusions_per_level(data.examples),
        "errors": _errors_view(data.examples, data.max_errors),
    }


TEMPLATE = "report.html.j2"
# The template is code too: components/code_version.py hashes it into ReviewReport's cache key.
CODE_DATA = ("templates/report.html.j2",)


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("evaluator", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = fmt
    return env


def render_report(data: ReportData) -> str:
    """The whole page as one HTML string."""
    return _environment().get_template(TEMPLATE).render(**page_view(data))
