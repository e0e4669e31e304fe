"""The short summary a person reads after `pipeline.py run`, taken from ML Metadata.

Everything printed comes from the artifacts the run recorded (row counts, metrics,
blessing, push), so the summary cannot disagree with what the pipeline did.
"""
from __future__ import annotations

import math
import os
from typing import Any

from components.run_status import list_runs
from components.safe_pusher.component import SafePusher
from schema.config import PipelineConfig
from schema.mlmd import newest, open_store, prop

# The pusher's node id: TFX names a node after its component class unless given an id, and
# pipeline_definition.py gives it none.
PUSHER_NODE = SafePusher.__name__
RESOLVER_SUFFIX = "_resolver"  # resolver nodes resolve inputs in every run; they do no work


def overall_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """{model name: {metric: value}} for the overall slice."""
    from schema.evaluation_results import OVERALL, metric_values

    out: dict[str, dict[str, float]] = {}
    for v in metric_values(evaluation_uri):
        if v.slice == OVERALL and not v.is_diff and v.value is not None:
            out.setdefault(v.model or "candidate", {})[v.name] = v.value
    return out


def failing_checks(evaluation_uri: str) -> list[str]:
    """The checks the candidate missed, one readable line each, in the gate's own words
    (the same sentences as the review report)."""
    from components.review_report.executor import read_intervals, read_validation
    from evaluator.report import explain_failures

    return explain_failures(read_validation(evaluation_uri).failures, read_intervals(evaluation_uri))


# The overall values the summary prints, each with its interval.
SUMMARY_METRICS = ("leaf_accuracy", "full_path_hierarchical_f1", "coverage", "node_precision", "hierarchical_f1")


def overall_lines(evaluation_uri: str) -> list[str]:
    """Candidate, baseline and paired difference with their intervals (overall slice)."""
    from components.review_report.executor import read_intervals
    from evaluator.report import BASELINE, CANDIDATE, DIFFERENCE, OVERALL

    overall = read_intervals(evaluation_uri).get(OVERALL, {})
    lines = []
    for name in SUMMARY_METRICS:
        parts = [f"{who} {overall[who][name].text()}" for who in (CANDIDATE, BASELINE, DIFFERENCE)
                 if name in overall.get(who, {})]
        if parts:
            lines.append(f"  {name}: " + ", ".join(parts))
    return lines


def outside_taxonomy(examples_uri: str, taxonomy_uri: str, split: str = "eval") -> dict[str, int]:
    """Counts the split's products whose category path is not wholly a node of the taxonomy
    (built from the train split only): unseen at the top level, or placed at an ancestor."""
    import tensorflow as tf

    from schema import features
    from schema.examples import iter_serialized, split_files
    from schema.taxonomy import Taxonomy, ancestors

    nodes = Taxonomy.load(taxonomy_uri).nodes()
    split_uri = os.path.join(examples_uri, f"Split-{split}")
    spec = {features.CATEGORY_PATH: tf.io.FixedLenFeature([], tf.string, default_value="")}
    counts = {"eval_rows": 0, "unseen_top_level": 0, "placed_higher": 0}
    try:
        split_files(split_uri)
    except FileNotFoundError:
        return counts
    for records in iter_serialized(split_uri, batch_size=4096):
        for path in tf.io.parse_example(records, spec)[features.CATEGORY_PATH].numpy():
            counts["eval_rows"] += 1
            prefixes = ancestors(path.decode("utf-8"))
            if not prefixes or prefixes[0] not in nodes:
                counts["unseen_top_level"] += 1
            elif prefixes[-1] not in nodes:
                counts["placed_higher"] += 1
    return counts


def print_summary(config: PipelineConfig) -> dict[str, Any]:
    store = open_store(config.metadata_path)
    examples = newest(store, "Examples", having="rows_ingested")  # the ingest's, not Transform's
    rejected = newest(store, "RejectedRecords")
    taxonomy = newest(store, "CategoryTaxonomy")
    model = newest(store, "Model", producer="TaxonomyTrainer")
    baseline = newest(store, "Model", producer="BaselineSelector")
    evaluation = newest(store, "ModelEvaluation")
    blessing = newest(store, "ModelBlessing")
    pushed = newest(store, "PushedModel")
    summary = {
        "rows_ingested": prop(rejected, "rows_ingested"),
        "rows_rejected": prop(rejected, "rows_rejected"),
        "image_warnings": prop(rejected, "image_warnings"),
        "blessed": bool(prop(blessing, "blessed", 0)),
        "pushed": bool(prop(pushed, "pushed", 0)),
        "pushed_to": prop(pushed, "pushed_destination", ""),
        "baseline": prop(baseline, "baseline_source", ""),
        "metrics": overall_metrics(evaluation.uri) if evaluation else {},
    }
    print("\n=== Run summary:", config.pipeline_name, "===")
    print(f"rows ingested: {summary['rows_ingested']}, rejected: {summary['rows_rejected']}, "
          f"image warnings: {summary['image_warnings']}")
    if rejected is not None:
        print(f"  rejected rows and reasons: {os.path.join(rejected.uri, 'rejected.csv')}")
    if taxonomy is not None:
        print(f"taxonomy: {prop(taxonomy, 'summary', '')}  ({taxonomy.uri})")
        if examples is not None:
            summary["eval_outside_taxonomy"] = outside_taxonomy(examples.uri, taxonomy.uri)
            unseen = summary["eval_outside_taxonomy"]
            print(f"eval products outside the taxonomy: {unseen['unseen_top_level']} with an unseen top-level "
                  f"category, {unseen['placed_higher']} placed at an ancestor (deeper category unseen or too "
                  f"rare in training), of {unseen['eval_rows']}")
    for model_name, values in sorted(summary["metrics"].items()):
        shown = ", ".join(
            f"{k}={v:.4f}" for k, v in sorted(values.items())
            if not math.isnan(v) and (k.startswith(("accuracy_level", "hierarchical_f1", "full_path_hierarchical_f1",
                                                    "coverage", "leaf_accuracy")))
        )
        print(f"metrics [{model_name}]: {shown}")
    if evaluation is not None:
        summary["intervals"] = overall_lines(evaluation.uri)
        if summary["intervals"]:
            from components.review_report.executor import read_confidence

            confidence = read_confidence(evaluation.uri)
            level = f"{confidence:.0%}" if confidence else "confidence"
            print(f"overall on the eval split, value [{level} interval] (difference: paired, candidate - baseline):")
            for line in summary["intervals"]:
                print(line)
    if summary["baseline"]:
        print(f"baseline: {summary['baseline']} model ({prop(baseline, 'source_uri', '')})")
    # What this run did itself: a re-run on unchanged data gets every output from the cache,
    # so the blessing and the push shown are an earlier run's.
    runs = list_runs(store, config.pipeline_name)
    this_run = runs[-1] if runs else {"executed": [], "cached": []}
    summary["cached"] = sorted(this_run["cached"])
    summary["executed"] = sorted(this_run["executed"])
    worked = [node for node in this_run["executed"] if not node.endswith(RESOLVER_SUFFIX)]
    if this_run["cached"] and not worked:
        print("nothing new: every component was served from the cache (this data, settings and code ran before)")
    pushed_earlier = summary["pushed"] and PUSHER_NODE in this_run["cached"]
    print(f"blessed: {summary['blessed']}   pushed: {summary['pushed']}"
          + (f" -> {summary['pushed_to']}" if summary["pushed"] else "")
          + (" (pushed by an earlier run)" if pushed_earlier else ""))
    report = newest(store, "ReviewReport")
    if report is not None:
        summary["report"] = prop(report, "report_path", "")
        print(f"review report (open in a browser): {summary['report']}")
    model_run = newest(store, "ModelRun", producer="TaxonomyTrainer")
    if model_run is not None:
        summary["tensorboard"] = model_run.uri
        print(f"training curves: tensorboard --logdir {model_run.uri}")
    if pushed is not None and prop(pushed, "infra_check"):
        print(f"infra check: {prop(pushed, 'infra_check')}")
    if summary["pushed"] and prop(pushed, "model_card"):
        print(f"model card: {prop(pushed, 'model_card')}")
    if evaluation is not None and not summary["blessed"]:
        summary["failing_checks"] = failing_checks(evaluation.uri)
        print("not blessed, so not pushed; failing checks:")
        for line in summary["failing_checks"]:
            print(f"  - {line}")
    print("outputs:")
    for label, artifact in (("examples", examples), ("model", model), ("evaluation (TFMA)", evaluation),
                            ("blessing", blessing)):
        if artifact is not None:
            print(f"  {label}: {artifact.uri}")
    print(f"  metadata: {config.metadata_path}")
    print(f"  serving: {config.push_dir}")
    return summary
