"""The static review report of one pipeline run: one self-contained HTML page.

Pure functions over plain Python data (no TensorFlow, no TFMA): the `ReviewReport`
component reads the run's artifacts into these structures, and tests can build them by
hand. The page needs no network and no JavaScript: inline CSS, an inline SVG chart and
thumbnails as `data:` URIs. Every piece of text is HTML-escaped (titles come from
merchants).

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
import html
import io
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from evaluator.stats import Interval
from schema.taxonomy import ancestors

CANDIDATE = "candidate"
BASELINE = "baseline"
OVERALL = "Overall"
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


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


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


# ---------------------------------------------------------------------------- sections

CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1d232a;max-width:1200px}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.verdict{display:inline-block;padding:6px 14px;border-radius:4px;font-weight:bold;font-size:1.2em;color:#fff}
.verdict.ok{background:#1a7f37}.verdict.fail{background:#cf222e}.verdict.unknown{background:#6e7781}
td.regression{background:#ffebe9;color:#a40e26;font-weight:bold}td.improvement{color:#1a7f37}
td.failed{outline:2px solid #cf222e;outline-offset:-2px}
.muted{color:#6e7781}.small{font-size:.85em}ul.failures li{margin:4px 0}
img.thumb{max-width:96px;max-height:96px;display:block}
details{margin:6px 0}summary{cursor:pointer;font-weight:bold}
.legend span{margin-right:16px}
"""


def _verdict_html(data: ReportData) -> str:
    v = data.validation
    blessed = data.blessed if data.blessed is not None else v.ok
    if blessed is None:
        badge = '<span class="verdict unknown" id="verdict">NO VERDICT</span>'
    elif blessed:
        badge = '<span class="verdict ok" id="verdict">BLESSED</span>'
    else:
        badge = '<span class="verdict fail" id="verdict">NOT BLESSED</span>'
    out = [f"<section id=\"validation\"><h2>Verdict</h2><p>{badge}</p>"]
    if v.ok is None:
        out.append("<p>No TFMA validation result was found for this run.</p>")
    elif v.ok:
        out.append("<p>Every threshold of the evaluation config passed.</p>")
    else:
        out.append(f"<p>Validation failed: {len(v.failures)} threshold(s) not met.</p>")
    if v.failures:
        out.append('<ul class="failures">')
        for text in explain_failures(v.failures, data.intervals):
            out.append(f"<li>{esc(text)}</li>")
        out.append("</ul>")
    out.append(f'<p class="small" id="gate-rule">Rule: {esc(GATE_RULE)}</p>')
    if v.missing_slices:
        out.append("<p>Slices with thresholds but no data: "
                   + ", ".join(f"<code>{esc(s)}</code>" for s in v.missing_slices) + "</p>")
    if v.missing_thresholds:
        out.append("<p>Some configured thresholds had no metric to check (missing_thresholds).</p>")
    if v.rubber_stamp:
        out.append("<p class=\"muted\">No baseline model: change thresholds were not checked "
                   "(rubber stamp); only value thresholds applied.</p>")
    if data.blessed is not None and v.ok is not None and data.blessed != v.ok:
        out.append("<p><strong>Note:</strong> the blessing and the validation result disagree.</p>")
    out.append("</section>")
    return "\n".join(out)


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


def _ci(intervals: Mapping[str, Interval], name: str) -> str:
    """' [lower, upper]' of a metric's interval, '' when none was written."""
    value = intervals.get(name)
    if value is None or _isnan(value.lower):
        return ""
    return f' <span class="ci">[{fmt(value.lower, 3)}, {fmt(value.upper, 3)}]</span>'


def _metric_table(slice_name: str, by_model: Mapping[str, Mapping[str, float]], order: Sequence[str],
                  descriptions: Mapping[str, str], has_baseline: bool, failed: Mapping,
                  intervals: Optional[Mapping[str, Mapping[str, Interval]]] = None) -> str:
    cand = by_model.get(CANDIDATE, {})
    base = by_model.get(BASELINE, {})
    intervals = intervals or {}
    cand_ci, base_ci, diff_ci = (intervals.get(k, {}) for k in (CANDIDATE, BASELINE, DIFFERENCE))
    head = "<tr><th>metric</th><th>candidate</th>"
    if has_baseline:
        head += "<th>baseline</th><th>\u0394 (candidate \u2212 baseline)</th>"
    head += "<th>meaning</th></tr>"
    rows = [f'<table class="metrics" data-slice="{esc(slice_name)}">', head]
    for name in order:
        if name not in cand and name not in base:
            continue
        c, b = cand.get(name), base.get(name)
        diff = diff_ci[name].value if name in diff_ci else difference(c, b)
        kinds = failed.get((slice_name, name), set())
        mark = " \u2717" if kinds else ""
        row = (f'<tr data-metric="{esc(name)}"><td>{esc(name)}{mark}</td>'
               f'<td class="{_value_class("value" in kinds)}">{fmt(c)}{_ci(cand_ci, name)}</td>')
        if has_baseline:
            row += (f'<td class="num">{fmt(b)}{_ci(base_ci, name)}</td>'
                    f'<td class="{_diff_class(diff, "change" in kinds)}">{fmt_diff(diff)}{_ci(diff_ci, name)}</td>')
        row += f'<td class="small muted">{esc(descriptions.get(name, ""))}</td></tr>'
        rows.append(row)
    rows.append("</table>")
    return "\n".join(rows)


def _metrics_html(data: ReportData, descriptions: Mapping[str, str]) -> str:
    metrics = data.metrics
    if not metrics:
        return '<section id="metrics"><h2>Metrics</h2><p>No metrics were found.</p></section>'
    has_baseline = any(BASELINE in by_model and by_model[BASELINE] for by_model in metrics.values())
    all_names = {m for by_model in metrics.values() for values in by_model.values() for m in values}
    order = _metric_order(all_names, descriptions)
    failed = _failed_cells(data.validation.failures)
    slices = _slice_order(metrics)
    out = ['<section id="metrics"><h2>Metrics</h2>']
    if not has_baseline:
        out.append('<p class="muted">No baseline model in this evaluation: candidate only.</p>')
    else:
        out.append('<p class="small">Red: the candidate is worse than the baseline (all metrics '
                   'here are higher-is-better). \u2717: a threshold failed on this metric and slice. '
                   f'Brackets: {_confidence_text(data.confidence)} confidence interval over the slice\'s '
                   'products (exact for shares, '
                   'bootstrap for ratios; the difference is paired over the same products).</p>')
    if OVERALL in metrics:
        out.append(f"<h3>{OVERALL}</h3>")
        out.append(_metric_table(OVERALL, metrics[OVERALL], order, descriptions, has_baseline, failed,
                                 data.intervals.get(OVERALL)))
    # One row per slice, headline metrics side by side.
    headline = [m for m in HEADLINE_METRICS if m in all_names]
    out.append('<h3>Slices</h3><table id="slice-summary"><tr><th rowspan="2">slice</th>'
               '<th rowspan="2">products</th>')
    span = 3 if has_baseline else 1
    out.append("".join(f'<th colspan="{span}">{esc(m)}</th>' for m in headline)
               + '<th rowspan="2">failed thresholds</th></tr><tr>')
    out.append("".join(("<th>cand.</th><th>base.</th><th>\u0394</th>" if has_baseline else "<th>cand.</th>")
                       for _ in headline) + "</tr>")
    for s in slices:
        cand, base = metrics[s].get(CANDIDATE, {}), metrics[s].get(BASELINE, {})
        here = data.intervals.get(s, {})
        count = cand.get(EXAMPLE_COUNT)
        row = (f'<tr data-slice="{esc(s)}"><td>{esc(s)}</td>'
               f'<td class="num">{int(count) if not _isnan(count) else "n/a"}</td>')
        for m in headline:
            c, b = cand.get(m), base.get(m)
            kinds = failed.get((s, m), set())
            row += f'<td class="{_value_class("value" in kinds)}">{fmt(c)}{_ci(here.get(CANDIDATE, {}), m)}</td>'
            if has_baseline:
                diffs = here.get(DIFFERENCE, {})
                d = diffs[m].value if m in diffs else difference(c, b)
                row += (f'<td class="num">{fmt(b)}{_ci(here.get(BASELINE, {}), m)}</td>'
                        f'<td class="{_diff_class(d, "change" in kinds)}">{fmt_diff(d)}{_ci(diffs, m)}</td>')
        failed_here = sorted(m for (slice_, m) in failed if slice_ == s)
        out.append(row + f'<td class="small">{esc(", ".join(failed_here))}</td></tr>')
    out.append("</table>")
    out.append("<h3>Every metric per slice</h3>")
    for i, s in enumerate(slices):
        if s == OVERALL:
            continue
        cand, base = metrics[s].get(CANDIDATE, {}), metrics[s].get(BASELINE, {})
        diffs = [difference(cand.get(m), base.get(m)) for m in order]
        regress = any(d is not None and d < -EPSILON for d in diffs)
        flag = ' <span class="muted">(regressions)</span>' if regress and has_baseline else ""
        out.append(f'<details id="slice-{i}"><summary>{esc(s)}{flag}</summary>')
        out.append(_metric_table(s, metrics[s], order, descriptions, has_baseline, failed,
                                 data.intervals.get(s)))
        out.append("</details>")
    out.append("</section>")
    return "\n".join(out)


def _svg_chart(curves: Sequence[Tuple[str, List[CurvePoint], str, str]],
               points: Sequence[Tuple[str, float, float, str]]) -> str:
    """curves: (label, points, colour, dash); points: (label, coverage, precision, colour)."""
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

    out = [f'<svg id="coverage-precision" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="coverage-precision curve">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#8c959f"/>']
    for i in range(11):
        x = i / 10
        out.append(f'<line x1="{sx(x):.1f}" y1="{top}" x2="{sx(x):.1f}" y2="{top + ph}" stroke="#eaeef2"/>')
        out.append(f'<text x="{sx(x):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle">{x:.1f}</text>')
    steps = int(round((1 - y_min) * 10))
    for i in range(steps + 1):
        y = y_min + i / 10
        out.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + pw}" y2="{sy(y):.1f}" stroke="#eaeef2"/>')
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" font-size="11" text-anchor="end">{y:.1f}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 10}" font-size="12" text-anchor="middle">'
               'coverage (share of products given a path)</text>')
    out.append(f'<text x="14" y="{top + ph / 2}" font-size="12" text-anchor="middle" '
               f'transform="rotate(-90 14 {top + ph / 2})">precision</text>')
    for label, pts, colour, dash in curves:
        if not pts:
            continue
        coords = " ".join(f"{sx(p.coverage):.1f},{sy(max(p.precision, y_min)):.1f}" for p in pts)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline class="curve" fill="none" stroke="{colour}" stroke-width="2"{dash_attr} '
                   f'points="{coords}"><title>{esc(label)}</title></polyline>')
    for label, x, y, colour in points:
        if _isnan(x) or _isnan(y):
            continue
        out.append(f'<circle class="operating-point" cx="{sx(x):.1f}" cy="{sy(max(y, y_min)):.1f}" r="6" '
                   f'fill="{colour}" stroke="#000"><title>{esc(label)}: coverage {fmt(x, 3)}, '
                   f'node precision {fmt(y, 3)}</title></circle>')
    out.append("</svg>")
    return "\n".join(out)


def _curve_html(examples: Sequence[ExampleResult]) -> str:
    rows = labelled(examples)
    out = ['<section id="curve"><h2>Coverage and precision</h2>']
    if not rows:
        out.append("<p>No labelled products: no curve.</p></section>")
        return "\n".join(out)
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
        table.append((name, op, exact))
    out.append(
        f"<p>Over the {len(rows)} labelled products of the split. Lines: one global threshold on the "
        "confidence of the decoded path (<code>full_confidence</code>) swept from high to low; a product "
        "is predicted when its confidence reaches the threshold. Solid: precision = share of predicted "
        "products whose decoded path is exactly the true path. Dashed: node precision = share whose "
        "decoded path is the true path or an ancestor of it. Dot: the operating point of the per-node "
        "back-off thresholds (<code>category_path</code>): its coverage and node precision.</p>")
    out.append('<p class="legend small">' + "".join(
        f'<span style="color:{c}">\u25a0 {esc(n)}</span>' for n, c, _ in models)
        + '<span style="color:#fb8500">\u25cf per-node thresholds (candidate)</span></p>')
    out.append(_svg_chart(curves, marks[::-1]))  # the candidate's dot drawn last, on top
    out.append('<table id="operating-points"><tr><th>model</th><th>products</th><th>coverage</th>'
               '<th>node precision</th><th>exact precision</th>'
               '<th>global threshold reaching the same coverage: exact precision</th></tr>')
    for name, op, exact in table:
        same = next((p for p in exact if p.coverage >= op.coverage - EPSILON), None)
        same_text = f"{fmt(same.precision)} (threshold {fmt(same.threshold, 3)})" if same else "n/a"
        out.append(f'<tr data-model="{esc(name)}"><td>{esc(name)}</td><td class="num">{op.n}</td>'
                   f'<td class="num">{fmt(op.coverage)}</td><td class="num">{fmt(op.node_precision)}</td>'
                   f'<td class="num">{fmt(op.exact_precision)}</td><td class="num">{same_text}</td></tr>')
    out.append("</table></section>")
    return "\n".join(out)


def _confusions_html(examples: Sequence[ExampleResult]) -> str:
    out = ['<section id="confusions"><h2>Most frequent confusions per level</h2>',
           '<p class="small">Decoded path (before thresholds) against the true path, level by level; a '
           'product is counted at the first level where it goes wrong.</p>']
    confusions = confusions_per_level(examples)
    if not confusions:
        out.append("<p>No confusions: every decoded path is right.</p>")
    for level, items in confusions.items():
        out.append(f'<h3>Level {level}</h3><table class="confusions" data-level="{level}">'
                   "<tr><th>true node</th><th>predicted node</th><th>products</th></tr>")
        for true_node, predicted, count in items:
            out.append(f"<tr><td>{esc(true_node)}</td><td>{esc(predicted)}</td>"
                       f'<td class="num">{count}</td></tr>')
        out.append("</table>")
    out.append("</section>")
    return "\n".join(out)


def _errors_html(examples: Sequence[ExampleResult], max_errors: int) -> str:
    rows = labelled(examples)
    n_wrong = sum(error_kind(e) == WRONG for e in rows)
    n_backed = sum(error_kind(e) == BACKED_OFF for e in rows)
    chosen = select_errors(rows, max_errors)
    has_baseline = any(e.baseline is not None for e in chosen)
    out = ['<section id="errors"><h2>Errors</h2>',
           f"<p>{n_wrong} product(s) got a wrong path (not the true path nor an ancestor of it); "
           f"{n_backed} more had a wrong or too shallow decoded path that the thresholds backed off from. "
           f"Showing {len(chosen)}: wrong paths first, most confident first.</p>"]
    if not chosen:
        out.append("</section>")
        return "\n".join(out)
    head = ("<tr><th>image</th><th>id / title</th><th>true path</th><th>returned path</th>"
            "<th>confidence</th><th>decoded path (before thresholds)</th><th>decoded confidence</th>")
    if has_baseline:
        head += "<th>baseline path</th>"
    out.append('<table id="error-sample">' + head + "<th>kind</th></tr>")
    for e in chosen:
        if not e.has_image:
            image = '<span class="muted small">no image</span>'
        else:
            uri = thumbnail_data_uri(e.image)
            image = (f'<img class="thumb" src="{esc(uri)}" alt="{esc(e.title)}">' if uri
                     else '<span class="muted small">unreadable image</span>')
        returned = esc(e.candidate.path) if e.candidate.path else '<span class="muted">(abstained)</span>'
        row = (f'<tr data-id="{esc(e.id)}"><td>{image}</td><td><span class="muted small">{esc(e.id)}</span><br>'
               f"{esc(e.title)}</td><td>{esc(e.true_path)}</td><td>{returned}</td>"
               f'<td class="num">{fmt(e.candidate.confidence, 3)}</td><td>{esc(e.candidate.full_path)}</td>'
               f'<td class="num">{fmt(e.candidate.full_confidence, 3)}</td>')
        if has_baseline:
            row += f"<td>{esc(e.baseline.path) if e.baseline else ''}</td>"
        out.append(row + f"<td>{esc(error_kind(e))}</td></tr>")
    out.append("</table></section>")
    return "\n".join(out)


def _tensorboard_html(log_dir: Optional[str]) -> str:
    if not log_dir:
        return '<p class="small muted" id="tensorboard">No TensorBoard logs recorded for this model.</p>'
    href = log_dir if "://" in log_dir else "file://" + log_dir
    return (f'<p class="small" id="tensorboard">Training curves (TensorBoard, the Trainer\'s '
            f'<code>model_run</code> artifact): <a href="{esc(href)}">{esc(log_dir)}</a>; open with '
            f'<code>tensorboard --logdir {esc(log_dir)}</code></p>')


def render_report(data: ReportData) -> str:
    """The whole page as one HTML string."""
    descriptions = dict(data.descriptions) if data.descriptions is not None else default_descriptions()
    generated = data.generated or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    context = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in data.context.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(data.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(data.title)}</h1><p class=\"muted small\">Generated {esc(generated)}</p>",
        f'<table id="context">{context}</table>' if context else "",
        _tensorboard_html(data.tensorboard),
        '<nav class="small"><a href="#validation">verdict</a> \u00b7 <a href="#metrics">metrics</a> \u00b7 '
        '<a href="#curve">coverage and precision</a> \u00b7 <a href="#confusions">confusions</a> \u00b7 '
        '<a href="#errors">errors</a></nav>',
        _verdict_html(data),
        _metrics_html(data, descriptions),
        _curve_html(data.examples),
        _confusions_html(data.examples),
        _errors_html(data.examples, data.max_errors),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)
