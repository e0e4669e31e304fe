"""A ModelEvaluation (the Evaluator's TFMA output) read back: the one reader of its files.

The review report, the model card and the run summary all read the same results, so they
read them here: `metric_values` gives every stored metric value as one flat `MetricValue`
(its slice, model, name, whether it is TFMA's candidate-minus-baseline diff, the value and
the confidence interval evaluator/metrics.py writes beside it); `validation_result` the
gate's verdict (None when TFMA wrote none); `stored_eval_config` the EvalConfig TFMA
stored with its output. Each caller only shapes these into its own form.
TensorFlow Model Analysis is imported inside the functions: it is slow to import and
most users of `schema/` never need it.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

OVERALL = "Overall"  # the name of the slice of every product


@dataclasses.dataclass(frozen=True)
class MetricValue:
    """One metric value of one slice and model, as TFMA stored it."""

    slice: str  # OVERALL, "column = value[, column = value]" or "<slice> vs <slice>" (cross slice)
    slice_items: tuple[tuple[str, str], ...]  # the slice's (column, value) pairs; () overall and cross
    model: str  # the model's name in the EvalConfig; "" in a one-model evaluation
    name: str
    output_name: str
    is_diff: bool  # TFMA's (paired) difference of this model minus the baseline
    value: Optional[float]  # None when the value is not a number (e.g. a plot or an array)
    lower: Optional[float] = None  # the confidence interval, where one was written
    upper: Optional[float] = None


def number(metric_value: Any) -> Optional[float]:
    """A TFMA MetricValue (or an interval bound) as a float: its double or bounded value."""
    if metric_value.HasField("double_value"):
        return float(metric_value.double_value.value)
    if metric_value.HasField("bounded_value"):
        return float(metric_value.bounded_value.value.value)
    return None


def _slice_value(single: Any) -> str:
    which = single.WhichOneof("kind")
    value = getattr(single, which) if which else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value)


def slice_items(slice_key: Any) -> tuple[tuple[str, str], ...]:
    """A TFMA SliceKey proto as (column, value text) pairs; () for the overall slice."""
    return tuple((single.column, _slice_value(single)) for single in slice_key.single_slice_keys)


def slice_name(slice_key: Any) -> str:
    """A TFMA SliceKey proto as text: "Overall" or "column = value[, column = value]"."""
    items = slice_items(slice_key)
    return ", ".join(f"{column} = {value}" for column, value in items) if items else OVERALL


def record_slice_name(record: Any) -> str:
    """The slice of a MetricsForSlice or a ValidationResult's per-slice entry, cross slices
    as "<baseline slice> vs <comparison slice>"."""
    if record.HasField("cross_slice_key"):
        cross = record.cross_slice_key
        return f"{slice_name(cross.baseline_slice_key)} vs {slice_name(cross.comparison_slice_key)}"
    return slice_name(record.slice_key)


def slicing_spec_text(spec: Any) -> str:
    """A SlicingSpec (e.g. a slice TFMA found no examples for) as text."""
    parts = list(spec.feature_keys) + [f"{k} = {v}" for k, v in sorted(spec.feature_values.items())]
    if spec.slice_keys_sql:
        parts.append(spec.slice_keys_sql)
    return ", ".join(parts) or OVERALL


def metric_values(evaluation_uri: str) -> list[MetricValue]:
    """Every metric value of the evaluation at `evaluation_uri`, in TFMA's record order."""
    import tensorflow_model_analysis as tfma

    out = []
    for record in tfma.load_metrics(evaluation_uri):
        name = record_slice_name(record)
        items = () if record.HasField("cross_slice_key") else slice_items(record.slice_key)
        for kv in record.metric_keys_and_values:
            lower = upper = None
            if kv.HasField("confidence_interval"):
                lower, upper = number(kv.confidence_interval.lower_bound), number(kv.confidence_interval.upper_bound)
            out.append(MetricValue(slice=name, slice_items=items, model=kv.key.model_name, name=kv.key.name,
                                   output_name=kv.key.output_name, is_diff=bool(kv.key.is_diff),
                                   value=number(kv.value), lower=lower, upper=upper))
    return out


def validation_result(evaluation_uri: str) -> Optional[Any]:
    """TFMA's ValidationResult proto for the evaluation, None when it wrote no validation
    (an evaluation without thresholds)."""
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    if not tf.io.gfile.glob(os.path.join(evaluation_uri, "validations*")):
        return None
    return tfma.load_validation_result(evaluation_uri)


def stored_eval_config(evaluation_uri: str) -> Optional[Any]:
    """The EvalConfig TFMA stored with its output; None when there is none readable."""
    from tensorflow_model_analysis.writers.eval_config_writer import load_eval_run

    try:
        return load_eval_run(evaluation_uri)[0]
    except Exception:  # noqa: BLE001 - no readable eval_config.json
        return None
