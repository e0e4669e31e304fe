"""ExampleValidator that stops the run on blocking anomalies, naming each one.

The standard executor only records anomalies; a pipeline would then train on data that
broke its contract. This one records them the same way, then fails with a readable list.
"""
from __future__ import annotations

from typing import Any, Dict, List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.example_validator import executor as validator_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils


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
    def _Validate(self, inputs: Dict[str, Any], outputs: Dict[str, Any]) -> anomalies_pb2.Anomalies:
        anomalies = super()._Validate(inputs, outputs)
        self._found.append(anomalies)
        return anomalies

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]):
        self._found: list[anomalies_pb2.Anomalies] = []
        result = super().Do(input_dict, output_dict, exec_properties)
        stats = artifact_utils.get_single_instance(input_dict[standard_component_specs.STATISTICS_KEY])
        excluded = json_utils.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY, "null")) or []
        splits = [s for s in artifact_utils.decode_split_names(stats.split_names) if s not in excluded]
        problems = [line for split, found in zip(splits, self._found) for line in describe(split, found)]
        if problems:
            anomalies = artifact_utils.get_single_instance(output_dict[standard_component_specs.ANOMALIES_KEY])
            raise BlockingAnomalies(
                "the catalog breaks the curated schema; training is stopped. Anomalies:\n  "
                + "\n  ".join(problems)
                + f"\n(full report: {anomalies.uri})"
            )
        return result
