"""BaselineSelector prefers the latest blessed model and falls back to the bag-of-words one."""
import os

from tfx.types import standard_artifacts

from components.baseline_selector.executor import Executor


def _model(tmp_path, name, artifact_id):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / name)
    model.id = artifact_id
    serving = tmp_path / name / "Format-Serving"
    serving.mkdir(parents=True)
    (serving / "saved_model.pb").write_text(name)
    return model


def _run(tmp_path, inputs):
    out = standard_artifacts.Model()
    out.uri = str(tmp_path / f"out_{len(os.listdir(tmp_path))}")
    Executor().Do(inputs, {"baseline": [out]}, {})
    return out


def test_falls_back_to_this_runs_bag_of_words_model(tmp_path):
    bow = _model(tmp_path, "bow", 3)
    out = _run(tmp_path, {"fallback_model": [bow], "blessed_model": []})
    assert (tmp_path / out.uri / "Format-Serving" / "saved_model.pb").read_text() == "bow"
    assert out.get_string_custom_property("baseline_source") == "bag_of_words"


def test_prefers_the_latest_blessed_model(tmp_path):
    bow = _model(tmp_path, "bow", 3)
    old, new = _model(tmp_path, "old", 1), _model(tmp_path, "new", 2)
    out = _run(tmp_path, {"fallback_model": [bow], "blessed_model": [old, new]})
    assert (tmp_path / out.uri / "Format-Serving" / "saved_model.pb").read_text() == "new"
    assert out.get_string_custom_property("baseline_source") == "latest_blessed"
    assert out.get_string_custom_property("source_uri") == new.uri
