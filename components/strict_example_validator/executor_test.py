"""StrictExampleValidator: stops the run on anomalies, passes clean statistics, and leaves
the same anomalies artifact as TFX's ExampleValidator.

Real TFDV statistics of a few rows (tests/fixtures/statistics.py) against a tiny schema,
run through the executors as a pipeline would run them."""
from __future__ import annotations

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.example_validator import executor as tfx_validator
from tfx.types import artifact_utils

from components.strict_example_validator.executor import BlockingAnomalies, Executor
from schema import compat
from tests.fixtures.statistics import (
    CLEAN, UNEXPECTED_GENDER, anomalies_artifact, schema_artifact, statistics_artifact,
)


def _run(executor, tmp_path, splits: dict, name: str, exclude: str = "[]"):
    stats = statistics_artifact(tmp_path / name / "stats", splits)
    schema = schema_artifact(tmp_path / name / "schema")
    anomalies = anomalies_artifact(tmp_path / name / "anomalies")
    executor.Do({"statistics": [stats], "schema": [schema]}, {"anomalies": [anomalies]},
                {"exclude_splits": exclude})
    return anomalies


def test_anomalies_stop_the_run_naming_split_feature_and_value(tmp_path):
    with pytest.raises(BlockingAnomalies) as raised:
        _run(Executor(), tmp_path, {"train": CLEAN, "eval": UNEXPECTED_GENDER}, "strict")
    message = str(raised.value)
    assert "training is stopped" in message
    assert "split 'eval', feature 'gender'" in message and "Robot" in message
    assert "split 'train'" not in message  # the clean split is not blamed
    assert str(tmp_path / "strict" / "anomalies") in message  # where the full report is


def test_clean_statistics_pass(tmp_path):
    anomalies = _run(Executor(), tmp_path, {"train": CLEAN, "eval": CLEAN}, "clean")
    for split in ("train", "eval"):
        found = compat.split_anomalies(anomalies, split)
        assert not found.anomaly_info and not found.HasField("dataset_anomaly_info")


def test_an_excluded_split_does_not_stop_the_run(tmp_path):
    anomalies = _run(Executor(), tmp_path, {"train": CLEAN, "eval": UNEXPECTED_GENDER}, "excluded", '["eval"]')
    assert artifact_utils.decode_split_names(anomalies.split_names) == ["train"]


def test_writes_the_anomalies_artifact_tfx_writes(tmp_path):
    splits = {"train": CLEAN, "eval": UNEXPECTED_GENDER}
    ours = anomalies_artifact(tmp_path / "ours")
    with pytest.raises(BlockingAnomalies):
        stats = statistics_artifact(tmp_path / "stats", splits)
        schema = schema_artifact(tmp_path / "schema")
        Executor().Do({"statistics": [stats], "schema": [schema]}, {"anomalies": [ours]}, {"exclude_splits": "[]"})
    theirs = anomalies_artifact(tmp_path / "theirs")
    tfx_validator.Executor().Do({"statistics": [stats], "schema": [schema]}, {"anomalies": [theirs]},
                                {"exclude_splits": "[]"})
    assert ours.split_names == theirs.split_names
    assert ours.get_json_value_custom_property("blessed") == theirs.get_json_value_custom_property("blessed") \
        == {"train": 1, "eval": 0}
    for split in ("train", "eval"):
        assert compat.split_anomalies(ours, split) == compat.split_anomalies(theirs, split)
    eval_anomalies = compat.split_anomalies(ours, "eval")
    assert eval_anomalies.anomaly_info["gender"].severity == anomalies_pb2.AnomalyInfo.ERROR
