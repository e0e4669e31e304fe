"""SafePusher's executor end to end (TFX artifacts in, serving folder and PushedModel out):
infra check, atomic versioned push and model card, on tiny fake serving models and a real
TFMA evaluation."""
import json
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfx.dsl.io import fileio  # noqa: E402
from tfx.proto import pusher_pb2  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from components.safe_pusher import push  # noqa: E402
from components.safe_pusher.component import SafePusher  # noqa: E402
from components.safe_pusher.executor import Executor  # noqa: E402
from schema import features, serving_layout  # noqa: E402
from schema.taxonomy import Taxonomy  # noqa: E402
from trainer.inference_client import newest_model  # noqa: E402

SPEC = "tiny"
PATHS = [["Apparel", "Topwear"], ["Apparel", "Bottomwear"], ["Footwear", "Shoes"], ["Footwear"]]
TAXONOMY = Taxonomy.build(PATHS * 3, max_depth=2).to_dict()
THRESHOLDS = {"target_precision": 0.95, "levels": {"1": 0.3, "2": 0.6},
              "nodes": {"Apparel": 0.2, "Apparel > Topwear": 0.5}, "support": {}}
INFO = {"kind": "hierarchical", "preset": {"name": "small", "epochs": 4, "batch_size": 64, "beam_width": 3},
        "train_examples": 12, "workers": 1, "loss_history": [1.5, 0.7, 0.4, 0.3], "embedding_features": [],
        "taxonomy": "2 levels"}


class FakeServing(tf.Module):
    """The serving contract with canned behaviour: `good` returns the true path of each
    example, `empty` no path, `unknown` a path outside the taxonomy, `short` a batch of 1."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        parsed = tf.io.parse_example(
            examples, {features.CATEGORY_PATH: tf.io.FixedLenFeature([], tf.string, default_value="")})
        n = tf.shape(examples)[0]
        if self.mode == "empty":
            full = tf.fill([n], "")
        elif self.mode == "unknown":
            full = tf.fill([n], "Garden > Hoses")
        else:
            full = parsed[features.CATEGORY_PATH]
        conf = tf.fill([n], 0.9)
        depth = tf.fill([n], 2)
        if self.mode == "short":
            conf = conf[:1]
        out = {
            features.OUT_PATH: full, features.OUT_CONFIDENCE: conf, features.OUT_DEPTH: depth,
            features.OUT_FULL_PATH: full, features.OUT_FULL_CONFIDENCE: conf, "full_depth": depth,
        }
        for k in (1, 2):
            out[features.out_level_class(k)] = tf.fill([n], "")
            out[features.out_level_confidence(k)] = tf.fill([n], 0.9)
        return out


def _save_model(root: Path, mode: str) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.uri = str(root / f"model_{mode}")
    export = os.path.join(model.uri, "Format-Serving")
    module = FakeServing(mode)
    tf.saved_model.save(module, export, signatures={"serving_default": module.serve})
    os.makedirs(os.path.join(export, "assets.extra"))
    for name, payload in (("taxonomy.json", TAXONOMY), ("thresholds.json", THRESHOLDS), ("model_info.json", INFO)):
        with open(os.path.join(export, "assets.extra", name), "w") as handle:
            json.dump(payload, handle)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {mode: _save_model(root, mode) for mode in ("good", "empty", "unknown", "short")}


def _example(i: int, path: list) -> bytes:
    feats = {
        features.ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"p{i}".encode()])),
        features.TITLE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"product {i}".encode()])),
        features.CATEGORY_PATH: tf.train.Feature(bytes_list=tf.train.BytesList(value=[" > ".join(path).encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root)
    artifact.split_names = '["train", "eval"]'
    for split in ("train", "eval"):
        os.makedirs(root / f"Split-{split}")
        with tf.io.TFRecordWriter(str(root / f"Split-{split}" / "data.gz"), options="GZIP") as writer:
            for i in range(10):
                writer.write(_example(i, PATHS[i % len(PATHS)]))
    return artifact


def _blessing(tmp_path, blessed: bool):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    return blessing


def _push(tmp_path, model, examples=None, blessed=True, evaluation=None, smoke_rows=32):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed_model")
    inputs = {"model": [model], "model_blessing": [_blessing(tmp_path, blessed)]}
    if examples is not None:
        inputs["examples"] = [examples]
    if evaluation is not None:
        inputs["evaluation"] = [evaluation]
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "serving" / SPEC)))
    Executor().Do(inputs, {"pushed_model": [pushed]},
                  {"push_destination": proto_utils.proto_to_json(destination), "smoke_rows": smoke_rows})
    return pushed


def _serving(tmp_path) -> Path:
    return tmp_path / "serving" / SPEC


def _old_version(tmp_path) -> Path:
    old = _serving(tmp_path) / "1000"
    old.mkdir(parents=True)
    (old / "saved_model.pb").write_bytes(b"old")
    (old / "_COMPLETE").write_text(serving_layout.marker_text(old))
    return old


def test_good_model_is_pushed_with_model_card(tmp_path, models, examples):
    pushed = _push(tmp_path, models["good"], examples)
    assert pushed.get_int_custom_property("pushed") == 1
    version = pushed.get_string_custom_property("pushed_version")
    target = _serving(tmp_path) / version
    assert pushed.get_string_custom_property("pushed_destination") == str(target)
    assert pushed.get_string_custom_property("infra_check").startswith("passed")
    assert pushed.get_string_custom_property("model_card") == str(target / "model_card.md")
    assert (target / "saved_model.pb").exists() and (target / "variables").is_dir()
    assert (target / "assets.extra" / "taxonomy.json").exists()
    assert not list(_serving(tmp_path).glob(".incoming-*"))
    assert newest_model(tmp_path / "serving", SPEC) == target
    card = json.loads((target / "model_card.json").read_text())
    assert card["model"]["kind"] == "hierarchical" and card["model"]["preset"] == "small"
    assert card["model"]["train_examples"] == 12
    assert card["taxonomy"]["levels"] == 2 and card["taxonomy"]["nodes_per_level"] == [2, 3]
    assert card["thresholds"] == {"enabled": True, "target_precision": 0.95, "levels": {"1": 0.3, "2": 0.6},
                                  "node_thresholds": 2, "confidence": None, "nodes_on_level_rule": 0}
    assert card["infra_check"]["status"] == "passed" and card["infra_check"]["rows"] == 10
    assert card["evaluation"]["available"] is False
    md = (target / "model_card.md").read_text()
    assert "Metrics unavailable: no evaluation was given to the pusher" in md
    assert "## Known limits" in md and "cannot be predicted" in md and "calibration split" in md
    # The archive copy in the PushedModel artifact, as the standard pusher makes it.
    assert (Path(pushed.uri) / "saved_model.pb").exists() and (Path(pushed.uri) / "model_card.md").exists()


@pytest.mark.parametrize("mode, reason", [
    ("empty", "full_path is empty for 10 of 10 rows"),
    ("unknown", "full_path is not a taxonomy path for 10 of 10 rows, e.g. 'Garden > Hoses'"),
    ("short", "output 'confidence' has shape [1] for 10 requests"),
])
def test_contract_breaking_model_is_not_pushed(tmp_path, models, examples, mode, reason):
    old = _old_version(tmp_path)
    pushed = _push(tmp_path, models[mode], examples)
    assert pushed.get_int_custom_property("pushed") == 0
    check = pushed.get_string_custom_property("infra_check")
    assert check.startswith("failed: ") and reason in check
    assert sorted(p.name for p in _serving(tmp_path).iterdir()) == ["1000"]
    assert newest_model(tmp_path / "serving", SPEC) == old
    assert (old / "saved_model.pb").read_bytes() == b"old"


def test_not_blessed_model_is_not_pushed(tmp_path, models, examples):
    pushed = _push(tmp_path, models["good"], examples, blessed=False)
    assert pushed.get_int_custom_property("pushed") == 0
    assert "not blessed" in pushed.get_string_custom_property("infra_check")
    assert not _serving(tmp_path).exists()


def test_without_examples_the_smoke_test_is_skipped(tmp_path, models):
    pushed = _push(tmp_path, models["good"])
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("infra_check").startswith("skipped")


def test_existing_version_is_bumped(tmp_path, models, monkeypatch):
    monkeypatch.setattr(push.time, "time", lambda: 2000.5)
    (_serving(tmp_path) / "2000").mkdir(parents=True)
    (_serving(tmp_path) / ".incoming-2001").mkdir()  # left by a killed push
    pushed = _push(tmp_path, models["good"])
    assert pushed.get_string_custom_property("pushed_version") == "2002"
    assert (_serving(tmp_path) / "2002" / "saved_model.pb").exists()
    # No push holds the lock, so that staging folder was left by a killed push: removed.
    assert not list(_serving(tmp_path).glob(".incoming-*"))


def test_a_complete_version_carries_its_file_manifest(tmp_path, models):
    pushed = _push(tmp_path, models["good"])
    target = Path(pushed.get_string_custom_property("pushed_destination"))
    listed = json.loads((target / "_COMPLETE").read_text())["files"]
    assert "saved_model.pb" in listed and "model_card.md" in listed
    assert any(name.startswith("variables/") for name in listed)
    assert listed == {str(p.relative_to(target)): p.stat().st_size
                      for p in target.rglob("*") if p.is_file() and p.name != "_COMPLETE"}


def test_categorize_skips_a_broken_version_and_names_it(tmp_path, models, capsys):
    good = Path(_push(tmp_path, models["good"]).get_string_custom_property("pushed_destination"))
    # A version copied in by hand without its variables, numbered above the good one.
    broken = _serving(tmp_path) / str(int(good.name) + 5)
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes((good / "saved_model.pb").read_bytes())
    assert newest_model(tmp_path / "serving", SPEC) == good
    err = capsys.readouterr().err
    assert f"warning: skipping {broken}" in err and "_COMPLETE" in err
    # A complete version whose file shrank (truncated copy) is broken too.
    (good / "model_card.md").write_text("")
    with pytest.raises(FileNotFoundError, match="no complete model version"):
        newest_model(tmp_path / "serving", SPEC)
    assert "model_card.md has 0 bytes" in capsys.readouterr().err


def test_versions_grow_past_a_stray_high_numbered_folder(tmp_path, models):
    stray = _serving(tmp_path) / "99999999999"
    stray.mkdir(parents=True)
    first = _push(tmp_path, models["good"]).get_string_custom_property("pushed_version")
    second = _push(tmp_path, models["good"]).get_string_custom_property("pushed_version")
    assert int(first) == 100000000000 and int(second) == int(first) + 1
    assert newest_model(tmp_path / "serving", SPEC).name == second


def test_retention_keeps_the_newest_three_complete_versions(tmp_path, models):
    hand_made = _serving(tmp_path) / "5"
    hand_made.mkdir(parents=True)  # broken: no marker; left for a person to look at
    versions = [_push(tmp_path, models["good"]).get_string_custom_property("pushed_version") for _ in range(5)]
    left = sorted((p.name for p in _serving(tmp_path).iterdir() if p.name.isdigit()), key=int)
    assert left == sorted(["5"] + versions[-3:], key=int)
    assert newest_model(tmp_path / "serving", SPEC).name == versions[-1]


def test_readers_never_see_a_partial_version(tmp_path, models, monkeypatch):
    """A reader polling during a (slowed-down) push sees the old version, then the whole new one."""
    old = _old_version(tmp_path)
    source = Path(models["good"].uri) / "Format-Serving"
    expected = {str(p.relative_to(source)) for p in source.rglob("*") if p.is_file()}
    expected |= {"model_card.md", "model_card.json"}
    real_copy = fileio.copy

    def slow_copy(*args, **kwargs):
        time.sleep(0.02)
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(fileio, "copy", slow_copy)
    seen, problems, staged = [], [], []
    done = threading.Event()

    def reader():
        while not done.is_set():
            try:
                version = newest_model(tmp_path / "serving", SPEC)
            except FileNotFoundError as err:
                problems.append(str(err))
                continue
            seen.append(version.name)
            if version != old:
                files = {str(p.relative_to(version)) for p in version.rglob("*") if p.is_file()}
                if not expected <= files:
                    problems.append(f"{version.name} lacks {sorted(expected - files)}")
            staged.extend(p.name for p in _serving(tmp_path).glob(".incoming-*"))
            time.sleep(0.001)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        pushed = _push(tmp_path, models["good"])
    finally:
        done.set()
        thread.join()
    new = pushed.get_string_custom_property("pushed_version")
    assert not problems
    assert staged, "the reader never polled while the push was staging"
    assert set(seen) <= {"1000", new} and seen[0] == "1000"
    assert newest_model(tmp_path / "serving", SPEC).name == new
    assert not list(_serving(tmp_path).glob(".incoming-*"))


def test_model_card_json_holds_the_real_evaluation(tmp_path, models, examples):
    """A real TFMA evaluation (the pipeline's EvalConfig, predictions given as features) is
    read by the pusher, and model_card.json says what was evaluated: the counts and shares
    below are set by construction, the intervals are the exact (Clopper-Pearson) ones."""
    from scipy.stats import beta

    from tests.fixtures.evaluation import evaluate_from_features, path_example

    top, bottom, shoes = "Apparel > Topwear", "Apparel > Bottomwear", "Footwear > Shoes"
    records = []
    # Apparel (25): the candidate gets 22 right, the baseline 15 of those.
    records += [path_example(top, "Apparel", top, top if i < 15 else bottom) for i in range(22)]
    records += [path_example(top, "Apparel", bottom, bottom) for _ in range(3)]
    # Footwear (15): both get the same 12 right.
    records += [path_example(shoes, "Footwear", shoes if i < 12 else top, shoes if i < 12 else top)
                for i in range(15)]
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = evaluate_from_features(tmp_path / "tfma", records, depth=2)

    pushed = _push(tmp_path, models["good"], examples, evaluation=evaluation)
    assert pushed.get_int_custom_property("pushed") == 1
    target = Path(pushed.get_string_custom_property("pushed_destination"))
    card = json.loads((target / "model_card.json").read_text())
    facts = card["evaluation"]
    assert facts["available"] is True and facts["note"] == ""
    assert facts["validation_ok"] is True  # floors met, a significant win (7 discordant, all the candidate's)
    overall = facts["overall"]
    assert overall["candidate"]["leaf_accuracy"] == pytest.approx(34 / 40)
    assert overall["baseline"]["leaf_accuracy"] == pytest.approx(27 / 40)
    assert overall["difference"]["leaf_accuracy"] == pytest.approx(7 / 40)
    assert overall["candidate"]["example_count"] == 40
    lower, upper = facts["overall_intervals"]["candidate"]["leaf_accuracy"]
    assert lower == pytest.approx(beta.ppf(0.025, 34, 7)) and upper == pytest.approx(beta.ppf(0.975, 35, 6))
    assert 0 < facts["overall_intervals"]["difference"]["leaf_accuracy"][0] < 7 / 40
    slices = {s["slice"]: s for s in facts["slices"] if s["column"] == "level_1"}
    assert set(slices) == {"level_1=Apparel", "level_1=Footwear"}
    assert slices["level_1=Apparel"]["examples"] == 25
    assert slices["level_1=Apparel"]["metrics"]["leaf_accuracy"] == pytest.approx(22 / 25)
    assert slices["level_1=Apparel"]["difference"]["leaf_accuracy"] == pytest.approx(7 / 25)
    assert slices["level_1=Footwear"]["examples"] == 15
    assert slices["level_1=Footwear"]["metrics"]["leaf_accuracy"] == pytest.approx(12 / 15)
    assert slices["level_1=Footwear"]["difference"]["leaf_accuracy"] == pytest.approx(0.0)
    assert card["blessed"] is True and card["source_model"] == os.path.join(models["good"].uri, "Format-Serving")
    md = (target / "model_card.md").read_text()
    assert "| leaf_accuracy | 0.8500 [" in md and "| Apparel | 25 | 0.8800 [" in md
    # The archive copy carries the same card.
    assert json.loads((Path(pushed.uri) / "model_card.json").read_text()) == card


def test_unreadable_evaluation_does_not_stop_the_push(tmp_path, models):
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path / "evaluation")
    os.makedirs(evaluation.uri)
    with open(os.path.join(evaluation.uri, "metrics-00000-of-00001.tfrecord"), "wb") as handle:
        handle.write(b"not a TFRecord file")
    pushed = _push(tmp_path, models["good"], evaluation=evaluation)
    assert pushed.get_int_custom_property("pushed") == 1
    md = (Path(pushed.get_string_custom_property("pushed_destination")) / "model_card.md").read_text()
    assert f"Metrics unavailable: cannot read the evaluation at {evaluation.uri}" in md


def test_component_spec():
    from tfx.types import Channel

    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory="/tmp/serving"))
    pusher = SafePusher(
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        push_destination=destination,
        examples=Channel(type=standard_artifacts.Examples),
        evaluation=Channel(type=standard_artifacts.ModelEvaluation),
        smoke_rows=8,
    )
    assert set(pusher.inputs) == {"model", "model_blessing", "examples", "evaluation"}
    assert set(pusher.outputs) == {"pushed_model"}
    assert pusher.outputs["pushed_model"].type == standard_artifacts.PushedModel
    assert pusher.exec_properties["smoke_rows"] == 8
    assert pusher.exec_properties["push_destination"] == proto_utils.proto_to_json(destination)  # as Pusher's
    assert pusher.id == "SafePusher"
    plain = SafePusher(model=Channel(type=standard_artifacts.Model), push_destination=destination)
    assert set(plain.inputs) == {"model"} and plain.exec_properties["smoke_rows"] == 32
    with pytest.raises(ValueError):
        SafePusher(model=None, push_destination=destination)
    with pytest.raises(ValueError):
        SafePusher(model=Channel(type=standard_artifacts.Model))


def test_pushes_to_one_folder_take_turns_and_leave_only_versions(tmp_path, models):
    base = _serving(tmp_path)
    order = []

    def hold():
        with serving_layout.push_lock(base):
            order.append("held")
            time.sleep(0.3)
            order.append("released")

    holder = threading.Thread(target=hold)
    holder.start()
    while not order:
        time.sleep(0.01)
    version = _push(tmp_path, models["good"]).get_string_custom_property("pushed_version")
    order.append("pushed")
    holder.join()
    assert order == ["held", "released", "pushed"]
    assert [p.name for p in base.iterdir()] == [version]
