"""push.py without TFX's executor: the serving contract check, the card's files, and the
copy-only push for object stores. The local atomic push, the lock and retention run
through the executor in executor_test.py."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from components.safe_pusher import model_card, push
from schema.taxonomy import Taxonomy
from trainer.inference_client import newest_model

PATHS = [["Apparel", "Topwear"], ["Apparel", "Bottomwear"], ["Footwear", "Shoes"], ["Footwear"]]
TAXONOMY = Taxonomy.build(PATHS * 3, max_depth=2).to_dict()
INFO = {"kind": "hierarchical", "preset": {"name": "small", "epochs": 4}, "train_examples": 12}


def _model_folder(root: Path) -> str:
    """A SavedModel folder's files (copied, never loaded)."""
    folder = root / "model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(b"data")
    return str(folder)


def test_check_outputs_names_missing_outputs():
    n = 3
    outputs = {name: np.zeros([n]) for name in push.contract_outputs(2)}
    del outputs["level_2_confidence"]
    problems = push.check_outputs(outputs, n, TAXONOMY)
    assert problems == ["outputs missing from the signature: level_2_confidence"]
    outputs = {name: np.array([b"Apparel > Topwear"] * n) for name in push.contract_outputs(2)}
    outputs["confidence"] = outputs["full_confidence"] = np.array([0.5, 0.9, np.nan])
    outputs["category_path"] = np.array([b"", b"Apparel", b"Apparel > Nope"])
    problems = push.check_outputs(outputs, n, TAXONOMY)
    assert len(problems) == 3
    assert problems[0].startswith("category_path is not a taxonomy path for 1 of 3 rows, e.g. 'Apparel > Nope'")


def test_markdown_without_thresholds_or_taxonomy():
    card = model_card.build_card(info=None, taxonomy=None, thresholds={}, infra={"status": "skipped"})
    md = model_card.render_markdown(card)
    assert "None: the returned path is the full decoded path." in md
    assert "Not available" in md and "Metrics unavailable" in md
    json.dumps(card, allow_nan=False)


EVAL_ROWS = [
    {"slice": [], "model": "candidate", "metric": "hierarchical_f1", "diff": False, "value": 0.91},
    {"slice": [], "model": "baseline", "metric": "hierarchical_f1", "diff": False, "value": 0.85},
    {"slice": [], "model": "candidate", "metric": "hierarchical_f1", "diff": True, "value": 0.06,
     "lower": 0.041, "upper": 0.079},
    {"slice": [], "model": "candidate", "metric": "coverage", "diff": False, "value": 0.94},
    {"slice": [], "model": "baseline", "metric": "coverage", "diff": False, "value": 0.97},
    {"slice": [], "model": "candidate", "metric": "leaf_accuracy", "diff": False, "value": float("nan")},
    {"slice": [("level_1", "Apparel")], "model": "candidate", "metric": "leaf_accuracy", "diff": False,
     "value": 0.93, "lower": 0.871, "upper": 0.969},
    {"slice": [("level_1", "Apparel")], "model": "candidate", "metric": "example_count", "diff": False,
     "value": 100.0},
    {"slice": [("level_1", "Apparel")], "model": "candidate", "metric": "leaf_accuracy", "diff": True,
     "value": 0.43, "lower": 0.33, "upper": 0.52},
    {"slice": [("level_1", "Apparel")], "model": "baseline", "metric": "leaf_accuracy", "diff": False,
     "value": 0.5},
    {"slice": [("gender", "Men")], "model": "candidate", "metric": "coverage", "diff": False, "value": 0.8},
]


def test_card_groups_metric_rows_per_slice_with_intervals():
    """The card from metric rows as `push.read_evaluation` returns them (the executor test
    reads a real TFMA result): grouping, differences, NaN, intervals, both renderings."""
    card = model_card.build_card(info=INFO, taxonomy=None, thresholds=None, infra={"status": "skipped"},
                                 metrics=model_card.summarize_metrics(EVAL_ROWS), validation_ok=True)
    files = push.card_files(card)
    card = json.loads(files[model_card.CARD_JSON])
    overall = card["evaluation"]["overall"]
    assert overall["candidate"]["hierarchical_f1"] == 0.91 and overall["baseline"]["hierarchical_f1"] == 0.85
    assert overall["difference"]["hierarchical_f1"] == 0.06  # TFMA's own diff
    assert overall["difference"]["coverage"] == pytest.approx(-0.03)  # computed
    assert overall["candidate"]["leaf_accuracy"] is None  # NaN -> null, the JSON stays standard
    assert card["evaluation"]["validation_ok"] is True
    slices = {s["slice"]: s["metrics"] for s in card["evaluation"]["slices"]}
    assert slices == {"gender=Men": {"coverage": 0.8}, "level_1=Apparel": {"leaf_accuracy": 0.93}}
    apparel = card["evaluation"]["slices"][0]
    assert apparel["examples"] == 100 and apparel["intervals"] == {"leaf_accuracy": [0.871, 0.969]}
    assert apparel["difference_intervals"] == {"leaf_accuracy": [0.33, 0.52]}
    assert [s["column"] for s in card["evaluation"]["slices"]] == ["level_1", "gender"]
    md = files[model_card.CARD_MD]
    assert "| hierarchical_f1 | 0.9100 | 0.8500 | +0.0600 [0.041, 0.079] |" in md
    assert "| coverage | 0.9400 | 0.9700 | -0.0300 |" in md
    assert "#### top-level category" in md
    assert "| Apparel | 100 | 0.9300 [0.871, 0.969] | n/a | n/a | n/a | +0.4300 [0.330, 0.520] |" in md
    assert "#### gender" in md


def test_push_by_copy_fallback_writes_saved_model_then_complete_marker(tmp_path, monkeypatch):
    """The object-store path (no rename): everything copied, saved_model.pb and _COMPLETE last."""
    order = []
    real_copy_file = push.io_utils.copy_file
    real_write = push.io_utils.write_string_file
    monkeypatch.setattr(push.io_utils, "copy_file",
                        lambda src, dst, *a, **k: (order.append(os.path.basename(dst)), real_copy_file(src, dst, *a, **k)))
    monkeypatch.setattr(push.io_utils, "write_string_file",
                        lambda name, text: (order.append(os.path.basename(name)), real_write(name, text)))
    source = _model_folder(tmp_path)
    serving = tmp_path / "serving" / "tiny"
    (serving / "7").mkdir(parents=True)
    version, target = push._push_by_copy(source, str(serving), {"model_card.md": "# card"}, 7)
    assert version == "8" and target == str(serving / "8")
    assert order == ["model_card.md", "saved_model.pb", "_COMPLETE"]
    assert (Path(target) / "variables").is_dir() and (Path(target) / "model_card.md").read_text() == "# card"
    assert newest_model(tmp_path / "serving", "tiny") == Path(target)  # an empty marker: an object-store push


def test_infra_check_decides_before_loading_the_model(tmp_path):
    """No taxonomy, no examples, no rows wanted, unreadable or empty eval split: decided
    without touching the model (there is none at this path)."""
    nowhere = str(tmp_path / "no_model")

    def broken(limit):
        raise ValueError("no split eval")

    cases = [
        (None, lambda limit: [b"x"], 8, "failed", "the model has no assets.extra/taxonomy.json"),
        (TAXONOMY, None, 8, "skipped", "no examples input"),
        (TAXONOMY, lambda limit: [b"x"], 0, "skipped", "smoke_rows=0"),
        (TAXONOMY, broken, 8, "failed", "cannot read the eval examples: no split eval"),
        (TAXONOMY, lambda limit: [], 8, "failed", "the eval split has no examples"),
    ]
    for taxonomy, read_rows, smoke_rows, status, detail in cases:
        result = push.infra_check(nowhere, taxonomy, read_rows, smoke_rows)
        assert result.status == status and result.detail.startswith(detail), result
    result = push.infra_check(nowhere, TAXONOMY, lambda limit: [b"x"] * limit, 4)
    assert result.failed and result.detail.startswith(f"the SavedModel at {nowhere} does not load")
