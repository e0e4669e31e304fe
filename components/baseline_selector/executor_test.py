"""BaselineSelector prefers the latest blessed model and falls back to the bag-of-words one."""
import json
import os

from tfx.types import standard_artifacts

from components.baseline_selector.executor import Executor
from schema import serving_layout


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


def _pushed(push_dir, version, complete=True):
    folder = push_dir / str(version)
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_text(f"pushed {version}")
    (folder / "variables" / "variables.index").write_text("index")
    if complete:  # a push writes its manifest last
        (folder / serving_layout.COMPLETE_MARKER).write_text(serving_layout.marker_text(folder))
    return folder


def _run_with_push_dir(tmp_path, inputs, push_dir):
    out = standard_artifacts.Model()
    out.uri = str(tmp_path / f"out_{len(os.listdir(tmp_path))}")
    Executor().Do(inputs, {"baseline": [out]}, {"pushed_models_dir": str(push_dir)})
    return out


def test_without_a_resolver_takes_the_newest_complete_pushed_version(tmp_path):
    """Open-source KFP runs no resolver: the incumbent is what `categorize` would serve."""
    bow = _model(tmp_path, "bow", 3)
    push_dir = tmp_path / "serving" / "fashion"
    _pushed(push_dir, 100)
    newest_complete = _pushed(push_dir, 200)
    _pushed(push_dir, 300, complete=False)  # a half-copied version never counts
    (push_dir / ".incoming-400").mkdir()
    out = _run_with_push_dir(tmp_path, {"fallback_model": [bow], "blessed_model": []}, push_dir)
    assert (tmp_path / out.uri / "Format-Serving" / "saved_model.pb").read_text() == "pushed 200"
    assert out.get_string_custom_property("baseline_source") == "latest_pushed"
    assert out.get_string_custom_property("source_uri") == str(newest_complete)


def test_without_any_pushed_version_falls_back_to_bag_of_words(tmp_path):
    bow = _model(tmp_path, "bow", 3)
    out = _run_with_push_dir(tmp_path, {"fallback_model": [bow]}, tmp_path / "serving" / "none")
    assert (tmp_path / out.uri / "Format-Serving" / "saved_model.pb").read_text() == "bow"
    assert out.get_string_custom_property("baseline_source") == "bag_of_words"


def test_pushed_versions_are_read_through_gfile_for_object_stores():
    """A gs:// serving dir goes through tf.io.gfile; here its 'ram://' filesystem stands in."""
    import tensorflow as tf

    base = "ram://serving/fashion"
    for version, complete in ((100, True), (200, False)):
        folder = f"{base}/{version}"
        tf.io.gfile.makedirs(f"{folder}/variables")
        for name, text in (("saved_model.pb", f"pushed {version}"), ("variables/variables.index", "index")):
            with tf.io.gfile.GFile(f"{folder}/{name}", "w") as handle:
                handle.write(text)
        if complete:
            marker = {"files": {"saved_model.pb": len(f"pushed {version}"), "variables/variables.index": 5}}
            with tf.io.gfile.GFile(f"{folder}/{serving_layout.COMPLETE_MARKER}", "w") as handle:
                handle.write(json.dumps(marker))
    newest, broken = serving_layout.newest_complete(base)
    assert newest == f"{base}/100"
    assert [(b, why) for b, why in broken] == [(f"{base}/200", "no _COMPLETE marker (a push that did not finish, or a copy made by hand)")]
