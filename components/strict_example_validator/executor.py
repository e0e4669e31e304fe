"""ExampleValidator that stops the run on blocking anomalies, naming each one.

The standard executor only records anomalies; a pipeline would then train on data that
broke its contract. This one runs the standard executor unchanged (so the anomalies
artifact is exactly TFX's), reads back what it wrote for each split
(schema/compat.py), and fails with a readable list when any is an error.
"""
from __future__ import annotations

from typing import Any, Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.example_validator import executor as validator_executor
from tfx.types import artifact_utils, standard_component_specs

from schema import compat


class BlockingAnomalies(RuntimeError):
    """Raised when a split breaks the curated schema."""


def describe(split: str, anomalies: anomalies_pb2.Anomalies) -> list[str]:
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        if info.severity != anomalies_pb2.AnomalyInfo.ERROR:
            continue
        reasons = "; ".join(r.description or r.short_description for r in info.reason)
        lines.append(f"split {split!r}, feature {feature!r}: {info.short_description}: {reasons}")
    for info in anomalies.dataset_anomaly_info.reason:
        lines.append(f"split {split!r}, dataset: {info.short_description}: {info.description}")
    return lines


class Executor(validator_executor.Executor):
    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]):
        result = super().Do(input_dict, output_dict, exec_properties)
        anomalies = artifact_utils.get_single_instance(output_dict[standard_component_specs.ANOMALIES_KEY])
        # The validated splits: the statistics' splits less exclude_splits, as TFX set them.
        splits = artifact_utils.decode_split_names(anomalies.split_names)
        problems = [line for split in splits for line in describe(split, compat.split_anomalies(anomalies, split))]
        if problems:
            raise BlockingAnomalies(
                "the catalog breaks the curated schema; training is stopped. Anomalies:\n  "
                + "\n  ".join(problems)
                + f"\n(full report: {anomalies.uri})"
            )
        return result
