"""The model card written next to every pushed version: one set of facts, two renderings.

`build_card` gathers the facts (model, taxonomy, metrics, thresholds, infra check, known
limits) into a plain dict, written as `model_card.json`; `render_markdown` turns the
same dict into `model_card.md` for people. Pure Python (no TensorFlow, no TFMA), so it is
testable on its own: the executor reads the artifacts and hands plain values in.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence

from schema.taxonomy import STOP, Taxonomy

CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"

CANDIDATE = "candidate"
BASELINE = "baseline"

# Metrics shown first (and, per slice, the only ones shown) in the markdown; the JSON
# holds every metric.
KEY_METRICS = ("leaf_accuracy", "full_path_hierarchical_f1", "coverage", "node_precision", "hierarchical_f1",
               "hierarchical_precision", "hierarchical_recall", "leaf_precision", "leaf_recall")
SLICE_METRICS = ("leaf_accuracy", "full_path_hierarchical_f1", "coverage", "node_precision")
EXAMPLE_COUNT = "example_count"
SLICE_LABELS = {"level_1": "top-level category", "has_image": "has image"}


# ---- facts ------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """NaN / inf become None so the JSON stays standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def slice_name(slice_key: Sequence[tuple[str, Any]]) -> str:
    """'' for the overall slice, else 'column=value' pairs joined by ', '."""
    return ", ".join(f"{col}={val}" for col, val in slice_key)


def summarize_metrics(rows: Iterable[Mapping[str, Any]]) -> dict:
    """Groups flat metric rows (as `executor.read_evaluation` returns them) for the card.

    Each row: {"slice": [(column, value), ...] ([] = overall), "model": "candidate" |
    "baseline" | "" (one-model evaluation), "metric": name, "diff": bool, "value": float,
    and "lower"/"upper" where TFMA wrote a confidence interval}.
    Returns {"overall": {"candidate": {...}, "baseline": {...}, "difference": {...}},
    "overall_intervals": the same buckets with [lower, upper],
    "slices": [{"slice", "column", "value", "examples", "metrics" (candidate), "intervals",
    "difference", "difference_intervals"}] (sorted)}. Differences are candidate minus
    baseline: TFMA's own (paired) diff values where it wrote them, else computed.
    """
    overall: dict[str, dict[str, float]] = {CANDIDATE: {}, BASELINE: {}, "difference": {}}
    overall_ci: dict[str, dict[str, list]] = {CANDIDATE: {}, BASELINE: {}, "difference": {}}
    slices: dict[tuple, dict[str, float]] = {}
    slice_ci: dict[tuple, dict[str, list]] = {}
    slice_diff: dict[tuple, dict[str, float]] = {}
    slice_diff_ci: dict[tuple, dict[str, list]] = {}
    for row in rows:
        model = row.get("model") or CANDIDATE
        key = tuple((str(c), v) for c, v in row.get("slice") or ())
        value = row.get("value")
        if value is None:
            continue
        interval = [row["lower"], row["upper"]] if row.get("lower") is not None else None
        if not key:
            bucket = "difference" if row.get("diff") else model
            overall.setdefault(bucket, {})[row["metric"]] = float(value)
            if interval:
                overall_ci.setdefault(bucket, {})[row["metric"]] = interval
        elif model == CANDIDATE:
            values, intervals = (slice_diff, slice_diff_ci) if row.get("diff") else (slices, slice_ci)
            values.setdefault(key, {})[row["metric"]] = float(value)
            slices.setdefault(key, {})
            if interval:
                intervals.setdefault(key, {})[row["metric"]] = interval
    for name, cand in overall[CANDIDATE].items():
        base = overall[BASELINE].get(name)
        if base is not None and name not in overall["difference"]:
            overall["difference"][name] = cand - base
    out_slices = []
    def order(key: tuple) -> tuple:  # top-level category first, then has_image, then the rest
        columns = [(list(SLICE_LABELS).index(c) if c in SLICE_LABELS else len(SLICE_LABELS), c) for c, _ in key]
        return len(key), columns, [str(v) for _, v in key]

    for key in sorted(slices, key=order):
        metrics = dict(sorted(slices[key].items()))
        examples = metrics.pop(EXAMPLE_COUNT, None)
        out_slices.append({
            "slice": slice_name(key),
            "column": ", ".join(c for c, _ in key),
            "value": ", ".join(str(v) for _, v in key),
            "examples": int(examples) if examples is not None and math.isfinite(examples) else None,
            "metrics": metrics,
            "intervals": dict(sorted(slice_ci.get(key, {}).items())),
            "difference": {m: v for m, v in sorted(slice_diff.get(key, {}).items()) if m != EXAMPLE_COUNT},
            "difference_intervals": dict(sorted(slice_diff_ci.get(key, {}).items())),
        })
    return {"overall": {k: dict(sorted(v.items())) for k, v in overall.items()},
            "overall_intervals": {k: dict(sorted(v.items())) for k, v in overall_ci.items()},
            "slices": out_slices}


def taxonomy_facts(taxonomy: Optional[dict]) -> Optional[dict]:
    if not taxonomy:
        return None
    tax = Taxonomy.from_dict(taxonomy)
    return {
        "levels": tax.depth,
        "nodes_per_level": [len([c for c in lvl.classes if c != STOP]) for lvl in tax.levels],
        "leaves": len(tax.leaves()),
        "unplaced": tax.unplaced,
        "min_products_per_node": tax.min_count,
        "summary": tax.summary(),
    }


def threshold_facts(thresholds: Optional[dict]) -> dict:
    if not thresholds:
        return {"enabled": False}
    levels = thresholds.get("levels") or {}
    return {
        "enabled": True,
        "target_precision": thresholds.get("target_precision"),
        "levels": {str(k): levels[k] for k in sorted(levels, key=lambda k: int(k))},
        "node_thresholds": len(thresholds.get("nodes") or {}),
        "confidence": thresholds.get("confidence"),
        "nodes_on_level_rule": len(thresholds.get("fallback") or []),
    }


def model_facts(info: Optional[dict]) -> dict:
    info = info or {}
    preset = info.get("preset")
    losses = info.get("loss_history") or []
    return {
        "kind": info.get("kind"),
        "preset": preset.get("name") if isinstance(preset, dict) else preset,
        "preset_settings": preset if isinstance(preset, dict) else None,
        "train_examples": info.get("train_examples"),
        "workers": info.get("workers"),
        "epochs_trained": len(losses) or None,
        "final_loss": losses[-1] if losses else None,
        "embedding_features": info.get("embedding_features"),
    }


def known_limits(taxonomy: Optional[dict], thresholds: dict, infra: Mapping[str, Any]) -> list[str]:
    out = ["Categories unseen in training cannot be predicted: every output is a path of the "
           "training taxonomy" + (f" ({taxonomy['leaves']} leaves)." if taxonomy else ".")]
    if taxonomy:
        out.append(
            f"Nodes with fewer than {taxonomy['min_products_per_node']} training products were merged "
            "into their parent: their products get the parent's (shorter) path.")
        if taxonomy["unplaced"]:
            out.append(
                f"{taxonomy['unplaced']} training products had a top-level category too rare to keep; "
                "such products cannot be placed correctly.")
    if thresholds.get("enabled"):
        out.append(
            f"Confidence thresholds were calibrated on the calibration split of this catalog for a "
            f"precision of {_fmt(thresholds.get('target_precision'), 2)}; another catalog or a shift in "
            "this one needs recalibration (precision and coverage will differ).")
    else:
        out.append("No confidence thresholds: `category_path` is always the full decoded path, "
                   "however unsure the model is.")
    out.append("Metrics come from this catalog's eval split; small slices give wide intervals (see the counts).")
    if infra.get("status") == "passed":
        out.append(f"The infra check ran the serving signature on only {infra.get('rows')} eval examples "
                   "(contract and taxonomy checks, not accuracy).")
    return out


def build_card(
    *,
    info: Optional[dict],
    taxonomy: Optional[dict],
    thresholds: Optional[dict],
    infra: Mapping[str, Any],
    metrics: Optional[dict] = None,
    metrics_note: str = "",
    blessed: Optional[bool] = None,
    validation_ok: Optional[bool] = None,
    model_uri: str = "",
    pushed_at: str = "",
) -> dict:
    """All facts of the card. `metrics` is `summarize_metrics(...)` or None (then
    `metrics_note` says why they are unavailable)."""
    tax = taxonomy_facts(taxonomy)
    thr = threshold_facts(thresholds)
    card = {
        "model": model_facts(info),
        "source_model": model_uri,
        "pushed_at": pushed_at,
        "blessed": blessed,
        "taxonomy": tax,
        "evaluation": {
            "available": metrics is not None,
            "note": metrics_note,
            "validation_ok": validation_ok,
            "overall": (metrics or {}).get("overall"),
            "overall_intervals": (metrics or {}).get("overall_intervals"),
            "slices": (metrics or {}).get("slices"),
        },
        "thresholds": thr,
        "infra_check": dict(infra),
        "known_limits": known_limits(tax, thr, infra),
    }
    return _clean(card)


# ---- markdown ---------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _signed(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:+.4f}"


def _with_ci(value: Any, interval: Optional[Sequence[Any]], signed: bool = False) -> str:
    """'0.9120 [0.897, 0.926]'; the value alone when no interval was written."""
    text = _signed(value) if signed else _fmt(value)
    if not interval or any(v is None for v in interval) or text == "n/a":
        return text
    return f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _ordered(names: Iterable[str]) -> list[str]:
    names = set(names)
    first = [n for n in KEY_METRICS if n in names]
    return first + sorted(names - set(first))


def render_markdown(card: Mapping[str, Any]) -> str:
    model = card.get("model") or {}
    lines = ["# Model card: product categoriser", ""]
    if card.get("pushed_at"):
        lines.append(f"Pushed {card['pushed_at']}" + (f" from `{card['source_model']}`." if card.get("source_model") else "."))
        lines.append("")

    lines += ["## Model", ""]
    lines.append(f"- kind: {_fmt(model.get('kind'))}")
    preset = model.get("preset_settings") or {}
    details = ", ".join(f"{k.replace('_', ' ')} {preset[k]}" for k in ("epochs", "batch_size", "beam_width") if k in preset)
    lines.append(f"- preset: {_fmt(model.get('preset'))}" + (f" ({details})" if details else ""))
    lines.append(f"- training examples: {_fmt(model.get('train_examples'))}")
    if model.get("final_loss") is not None:
        lines.append(f"- final training loss: {_fmt(model.get('final_loss'))} after {model.get('epochs_trained')} epochs")
    if model.get("embedding_features"):
        lines.append(f"- embedding features: {', '.join(model['embedding_features'])}")
    lines.append(f"- blessed by the Evaluator: {_fmt(card.get('blessed'))}")
    lines.append("")

    tax = card.get("taxonomy")
    lines += ["## Taxonomy", ""]
    if tax:
        lines.append(f"- levels: {tax['levels']}")
        lines.append(f"- nodes per level: {' / '.join(str(n) for n in tax['nodes_per_level'])}")
        lines.append(f"- leaves: {tax['leaves']}")
        lines.append(f"- unplaced training products: {tax['unplaced']}")
        lines.append(f"- minimum training products per node: {tax['min_products_per_node']}")
    else:
        lines.append("Not available (the model has no assets.extra/taxonomy.json).")
    lines.append("")

    ev = card.get("evaluation") or {}
    lines += ["## Evaluation (eval split)", ""]
    if not ev.get("available"):
        lines.append(f"Metrics unavailable: {ev.get('note') or 'no evaluation was given to the pusher'}.")
        lines.append("")
    else:
        overall = ev.get("overall") or {}
        cand, base, diff = (overall.get(k) or {} for k in (CANDIDATE, BASELINE, "difference"))
        ci = ev.get("overall_intervals") or {}
        cand_ci, base_ci, diff_ci = (ci.get(k) or {} for k in (CANDIDATE, BASELINE, "difference"))
        if ev.get("validation_ok") is not None:
            lines.append(f"TFMA validation: {'passed' if ev['validation_ok'] else 'failed'}.")
            lines.append("")
        lines += ["### Overall", ""]
        if cand_ci:
            lines += ["Brackets: two-sided confidence interval at the gate's confidence (95% unless "
                      "`--gate-confidence` set another) over the eval products (exact for shares, bootstrap for "
                      "ratios; the difference is paired over the same products).", ""]
        if base:
            lines += _table(["metric", "candidate", "baseline", "difference"],
                            [[n, _with_ci(cand.get(n), cand_ci.get(n)), _with_ci(base.get(n), base_ci.get(n)),
                              _with_ci(diff.get(n), diff_ci.get(n), signed=True)]
                             for n in _ordered(set(cand) | set(base))])
        else:
            lines += _table(["metric", "candidate"], [[n, _with_ci(cand.get(n), cand_ci.get(n))]
                                                      for n in _ordered(cand)])
            lines += ["", "No baseline model (first blessed model of this pipeline): no differences."]
        lines.append("")
        slices = ev.get("slices") or []
        lines += ["### Per slice (candidate)", ""]
        if not slices:
            lines += ["No slice metrics.", ""]
        by_column: dict[str, list] = {}
        for item in slices:
            by_column.setdefault(item["column"], []).append(item)
        for column, items in by_column.items():
            lines += [f"#### {SLICE_LABELS.get(column, column)}", ""]
            has_diff = any(item.get("difference") for item in items)
            lines += _table([column, "products"] + list(SLICE_METRICS) + (["leaf_accuracy difference"] if has_diff else []),
                            [[item["value"], _fmt(item.get("examples"))]
                             + [_with_ci(item["metrics"].get(m), (item.get("intervals") or {}).get(m))
                                for m in SLICE_METRICS]
                             + ([_with_ci((item.get("difference") or {}).get("leaf_accuracy"),
                                          (item.get("difference_intervals") or {}).get("leaf_accuracy"), signed=True)]
                                if has_diff else [])
                             for item in items])
            lines.append("")

    thr = card.get("thresholds") or {}
    lines += ["## Thresholds", ""]
    if thr.get("enabled"):
        lines.append(f"- target precision: {_fmt(thr.get('target_precision'), 2)}"
                     + (f", met with {thr['confidence']:.0%} confidence on the calibration split (Clopper-Pearson)"
                        if thr.get("confidence") else ""))
        levels = thr.get("levels") or {}
        lines.append("- per-level thresholds: " + (", ".join(f"level {k}: {_fmt(v, 3)}" for k, v in levels.items()) or "none"))
        lines.append(f"- node thresholds: {thr.get('node_thresholds', 0)}"
                     + (f" ({thr['nodes_on_level_rule']} without enough evidence take their level's rule)"
                        if thr.get("nodes_on_level_rule") else ""))
    else:
        lines.append("None: the returned path is the full decoded path.")
    lines.append("")

    infra = card.get("infra_check") or {}
    lines += ["## Infra check", ""]
    lines.append(f"- result: {infra.get('status', 'n/a')}" + (f" ({infra['detail']})" if infra.get("detail") else ""))
    lines.append("")

    lines += ["## Known limits", ""]
    lines += [f"- {item}" for item in card.get("known_limits") or []]
    lines.append("")
    return "\n".join(lines)
