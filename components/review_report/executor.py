"""ReviewReport executor: reads the run's artifacts into plain data, renders evaluator/report.py.

Three readers, each usable on its own (the notebook and the tests call them directly):
- `read_metrics` / `read_intervals` / `read_validation` / `read_confidence`: the Evaluator's
  output, read by `schema/evaluation_results.py`, shaped as the report's data;
- `read_blessing`: the ModelBlessing's `blessed` property (or its BLESSED / NOT_BLESSED file);
- `collect_examples`: the raw eval split run through the candidate's (and the baseline's)
  serving signature in batches, one `ExampleResult` per product. Images are not kept in
  this pass; `attach_images` reads them back for the products the report shows only, so
  memory does not grow with the catalog's photos.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from evaluator import report
from schema import evaluation_results, features, serving_layout
from schema.examples import first_bytes, first_int, iter_serialized
from schema.serving_model import ARTIFACT_SERVING_DIR, ServingModel, artifact_serving_path

EXAMPLES_KEY = "examples"
MODEL_KEY = "model"
BASELINE_MODEL_KEY = "baseline_model"
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"
REPORT_KEY = "report"
MAX_ERRORS_KEY = "max_errors"
SPLIT_KEY = "split"

REPORT_FILE = "index.html"
REPORT_PATH_PROPERTY = "report_path"
BATCH_SIZE = 256

ServingFn = Callable[[Sequence[bytes]], List[report.Prediction]]


# ---------------------------------------------------------------------------- TFMA


def _model_info(model_uri: str) -> dict:
    """The candidate's model_info.json (assets.extra); {} when it has none."""
    try:
        return serving_layout.read_asset(os.path.join(model_uri, ARTIFACT_SERVING_DIR), serving_layout.ASSETS_INFO) or {}
    except Exception:  # noqa: BLE001 - an unreadable asset (None: a model without one)
        return {}


def read_metrics(evaluation_uri: str) -> report.Metrics:
    """{slice: {model: {metric: value}}} from a ModelEvaluation's uri. The diff keys TFMA
    stores are skipped: the report computes candidate minus baseline from the values."""
    out: report.Metrics = {}
    for v in evaluation_results.metric_values(evaluation_uri):
        per_model = out.setdefault(v.slice, {})
        if v.is_diff or v.value is None:
            continue
        name = v.name if not v.output_name else f"{v.output_name}/{v.name}"
        per_model.setdefault(v.model or report.CANDIDATE, {})[name] = v.value
    return out


def read_intervals(evaluation_uri: str) -> report.Intervals:
    """{slice: {"candidate" | "baseline" | "difference": {metric: Interval}}}: the confidence
    intervals evaluator/metrics.py wrote beside each value (the difference is the paired one)."""
    from evaluator.stats import Interval

    out: report.Intervals = {}
    for v in evaluation_results.metric_values(evaluation_uri):
        per_model = out.setdefault(v.slice, {})
        if v.name == report.EXAMPLE_COUNT and not v.is_diff:  # a count is exact
            if v.value is not None:
                per_model.setdefault(v.model or report.CANDIDATE, {})[v.name] = Interval(v.value, v.value, v.value)
            continue
        if v.value is None or v.lower is None or v.upper is None:
            continue
        who = report.DIFFERENCE if v.is_diff else (v.model or report.CANDIDATE)
        per_model.setdefault(who, {})[v.name] = Interval(v.value, v.lower, v.upper)
    return out


def read_confidence(evaluation_uri: str) -> Optional[float]:
    """The intervals' confidence, from the eval config TFMA stored with its output."""
    import json

    config = evaluation_results.stored_eval_config(evaluation_uri)
    if config is None:
        return None
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name == "PathMetrics" and metric.config:
                return json.loads(metric.config).get("confidence")
    return None


def _failure(slice_text: str, failure) -> report.ThresholdFailure:
    key, threshold = failure.metric_key, failure.metric_threshold
    value = evaluation_results.number(failure.metric_value)
    common = dict(metric=key.name, slice=slice_text, model=key.model_name or report.CANDIDATE,
                  value=float("nan") if value is None else value, message=failure.message)
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        import tensorflow_model_analysis as tfma

        return report.ThresholdFailure(
            kind="change",
            absolute=change.absolute.value if change.HasField("absolute") else None,
            relative=change.relative.value if change.HasField("relative") else None,
            higher_is_better=change.direction != tfma.MetricDirection.LOWER_IS_BETTER,
            **common,
        )
    bounds = threshold.value_threshold
    return report.ThresholdFailure(
        kind="value",
        lower=bounds.lower_bound.value if bounds.HasField("lower_bound") else None,
        upper=bounds.upper_bound.value if bounds.HasField("upper_bound") else None,
        **common,
    )


def read_validation(evaluation_uri: str) -> report.Validation:
    """The verdict and every failing threshold; `ok=None` when TFMA wrote no validation."""
    result = evaluation_results.validation_result(evaluation_uri)
    if result is None:
        return report.Validation(ok=None)
    failures = []
    for per_slice in result.metric_validations_per_slice:
        text = evaluation_results.record_slice_name(per_slice)
        failures.extend(_failure(text, f) for f in per_slice.failures)
    spec_text = evaluation_results.slicing_spec_text
    missing = [spec_text(s) for s in result.missing_slices]
    missing += [f"{spec_text(s.baseline_spec)} vs cross slices" for s in result.missing_cross_slices]
    return report.Validation(
        ok=bool(result.validation_ok),
        failures=failures,
        missing_slices=missing,
        missing_thresholds=bool(result.missing_thresholds),
        rubber_stamp=bool(result.rubber_stamp),
    )


def read_blessing(blessing) -> Optional[bool]:
    """The ModelBlessing's `blessed` custom property, else its BLESSED / NOT_BLESSED file."""
    if blessing is None:
        return None
    if blessing.has_custom_property("blessed"):
        return bool(blessing.get_int_custom_property("blessed"))
    if tf.io.gfile.exists(os.path.join(blessing.uri, "BLESSED")):
        return True
    if tf.io.gfile.exists(os.path.join(blessing.uri, "NOT_BLESSED")):
        return False
    return None


# ---------------------------------------------------------------------------- examples


def _text(example: tf.train.Example, name: str) -> str:
    return first_bytes(example, name).decode("utf-8", "replace")


def load_serving_fn(model_uri: str) -> ServingFn:
    """The model's `serving_default` as a function of a batch of serialized examples."""
    path = artifact_serving_path(model_uri)
    model = ServingModel(path)

    def predict(serialized: Sequence[bytes]) -> List[report.Prediction]:
        arrays = {k: v.reshape(-1) for k, v in model(serialized).items()}
        if features.OUT_PATH not in arrays:
            raise KeyError(f"{path}: serving outputs {sorted(arrays)} lack {features.OUT_PATH!r}")
        n = len(serialized)

        def strings(name: str, fallback: str) -> List[str]:
            values = arrays.get(name, arrays.get(fallback))
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]

        def floats(name: str, fallback: str) -> List[float]:
            values = arrays.get(name, arrays.get(fallback))
            return [float(v) for v in values] if values is not None else [float("nan")] * n

        path_ = strings(features.OUT_PATH, features.OUT_PATH)
        full = strings(features.OUT_FULL_PATH, features.OUT_PATH)
        conf = floats(features.OUT_CONFIDENCE, features.OUT_CONFIDENCE)
        full_conf = floats(features.OUT_FULL_CONFIDENCE, features.OUT_CONFIDENCE)
        return [report.Prediction(path_[i], conf[i], full[i], full_conf[i]) for i in range(n)]

    return predict


def collect_examples(split_uri: str, candidate: ServingFn, baseline: Optional[ServingFn] = None,
                     batch_size: int = BATCH_SIZE) -> List[report.ExampleResult]:
    """One ExampleResult per product of the split, in file order, without image bytes."""
    out: List[report.ExampleResult] = []
    for batch in iter_serialized(split_uri, batch_size):
        cand = candidate(batch)
        base = baseline(batch) if baseline is not None else [None] * len(batch)
        for serialized, c, b in zip(batch, cand, base):
            example = tf.train.Example.FromString(serialized)
            out.append(report.ExampleResult(
                id=_text(example, features.ID),
                title=_text(example, features.TITLE),
                true_path=_text(example, features.CATEGORY_PATH),
                candidate=c,
                baseline=b,
                has_image=bool(first_int(example, features.HAS_IMAGE)) and bool(first_bytes(example, features.IMAGE)),
            ))
    return out


def attach_images(split_uri: str, examples: Sequence[report.ExampleResult],
                  chosen: Sequence[report.ExampleResult]) -> None:
    """Reads the image bytes back for `chosen` (a subset of `examples`, same split order)."""
    wanted = {id(e) for e in chosen if e.has_image}
    if not wanted:
        return
    index = {i for i, e in enumerate(examples) if id(e) in wanted}
    i = 0
    for batch in iter_serialized(split_uri):
        for serialized in batch:
            if i in index:
                examples[i].image = first_bytes(tf.train.Example.FromString(serialized), features.IMAGE)
            i += 1


# ---------------------------------------------------------------------------- executor


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[Any]],
        output_dict: Dict[str, List[Any]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        split = exec_properties.get(SPLIT_KEY) or "eval"
        max_errors = exec_properties.get(MAX_ERRORS_KEY)
        max_errors = report.DEFAULT_MAX_ERRORS if max_errors is None else int(max_errors)
        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        baselines = input_dict.get(BASELINE_MODEL_KEY) or []
        baseline = baselines[0] if baselines else None
        evaluation = artifact_utils.get_single_instance(input_dict[EVALUATION_KEY])
        blessings = input_dict.get(BLESSING_KEY) or []
        blessing = blessings[0] if blessings else None
        split_uri = artifact_utils.get_split_uri(input_dict[EXAMPLES_KEY], split)
        output = artifact_utils.get_single_instance(output_dict[REPORT_KEY])

        candidate_fn = load_serving_fn(model.uri)
        baseline_fn = load_serving_fn(baseline.uri) if baseline is not None else None
        examples = collect_examples(split_uri, candidate_fn, baseline_fn)
        attach_images(split_uri, examples, report.select_errors(report.labelled(examples), max_errors))

        from evaluator import metrics as metric_defs

        context = {
            "candidate model": model.uri,
            "baseline model": baseline.uri if baseline is not None else "none (first run)",
            "evaluation": evaluation.uri,
            "blessing": blessing.uri if blessing is not None else "none",
            "examples": f"{split_uri} ({len(examples)} products)",
        }
        data = report.ReportData(
            metrics=read_metrics(evaluation.uri),
            intervals=read_intervals(evaluation.uri),
            confidence=read_confidence(evaluation.uri),
            tensorboard=_model_info(model.uri).get("tensorboard_logs"),
            validation=read_validation(evaluation.uri),
            examples=examples,
            blessed=read_blessing(blessing),
            title="Categorisation review report",
            context=context,
            max_errors=max_errors,
            descriptions={name: value[1] for name, value in metric_defs.VALUES.items()},
        )
        page = report.render_report(data)
        tf.io.gfile.makedirs(output.uri)
        path = os.path.join(output.uri, REPORT_FILE)
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(page)
        output.set_string_custom_property(REPORT_PATH_PROPERTY, path)
        output.set_int_custom_property("products", len(examples))
        if data.blessed is not None:
            output.set_int_custom_property("blessed", int(data.blessed))
        overall = data.metrics.get(report.OVERALL, {}).get(report.CANDIDATE, {})
        f1 = overall.get("hierarchical_f1")
        if f1 is not None and not math.isnan(f1):
            output.set_float_custom_property("hierarchical_f1", f1)
