"""End to end: the real TFX pipeline with LocalDagRunner on small catalog samples.

Uses the first rows of the shared catalogs (or the generated demo catalog when
../shared is missing), then checks every artifact, the pushed model, `categorize` on rows
the model never saw, and that a deliberately broken candidate is not pushed.

The tests do not depend on each other or on their order: `fashion_run` makes the first
run once and nothing changes it afterwards; a test that runs the pipeline again does so
in its own copy of that run (`_copy_of`), where TFX's cache still serves the first run's
artifacts. The flipkart run is a `pipeline.py run` process started beside the first
fashion run.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import pytest

import pipeline
from schema.catalog_reader import Product, read_catalog
from schema.catalog_spec import load_spec
from tests.conftest import ROOT, shared_catalog

pytestmark = pytest.mark.e2e
TRAIN_ROWS = 2000
FLIPKART_TIMEOUT_S = 1200


def _run_argv(catalog: Path, spec: str, root: Path, serving: Path, *extra: str) -> list[str]:
    return ["run", "--catalog", str(catalog), "--spec", spec, "--pipeline-root", str(root),
            "--serving-dir", str(serving), "--max-rows", str(TRAIN_ROWS), "--preset", "small", *extra]


def _run(catalog: Path, spec: str, root: Path, serving: Path, *extra: str) -> None:
    assert pipeline.main(_run_argv(catalog, spec, root, serving, *extra)) == 0


def _versions(serving: Path, spec: str) -> list[str]:
    base = serving / spec
    return sorted(p.name for p in base.iterdir()) if base.exists() else []


def _unseen_catalog(catalog: Path, spec_name: str, out_dir: Path, n: int = 200) -> tuple[Path, list[str]]:
    """Rows after the training sample, photos dropped (they live in the read-only catalog),
    plus a duplicate and a row with nothing to read, to exercise the contract."""
    spec = load_spec(spec_name)
    src = catalog / spec.csv_file
    with open(src, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [r for i, r in enumerate(reader) if i >= TRAIN_ROWS][:n]
    if spec.image_column:
        col = header.index(spec.image_column)
        for r in rows:
            r[col] = ""
    dup = list(rows[0])
    empty = list(rows[1])
    empty[header.index(spec.id_column)] = "no-text-row"
    empty[header.index(spec.title_column)] = ""
    rows = rows[:5] + [dup, empty] + rows[5:]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / spec.csv_file
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path, [r[header.index(spec.id_column)] for r in rows]


class Run(NamedTuple):
    catalog: Path
    root: Path
    serving: Path
    console: str  # what the run printed


@pytest.fixture(scope="module")
def flipkart_run(tmp_path_factory) -> Iterator[Optional[tuple[subprocess.Popen, Path]]]:
    """A `pipeline.py run` on the flipkart sample, as a process started before the fashion
    run and beside it (one in-process run leaves a core idle much of the time); its test
    waits for it. None without ../shared/datasets/flipkart."""
    catalog = shared_catalog("flipkart")
    if catalog is None:
        yield None
        return
    base = tmp_path_factory.mktemp("flipkart")
    argv = [sys.executable, str(ROOT / "pipeline.py"), *_run_argv(catalog, "flipkart", base / "root", base / "serving")]
    with open(base / "run.log", "wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "TF_USE_LEGACY_KERAS": "1"}, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, demo_catalog, flipkart_run) -> Run:
    """The first run on a fresh pipeline root; read-only for the tests."""
    catalog = shared_catalog("fashion") or demo_catalog
    root = tmp_path_factory.mktemp("fashion_root")
    serving = tmp_path_factory.mktemp("serving")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        _run(catalog, "fashion", root, serving)
    print(out.getvalue())
    return Run(catalog, root, serving, out.getvalue())


def _copy_of(run: Run, tmp_path: Path) -> Run:
    """The first run's pipeline root (ML Metadata included) and serving folder, copied, so
    a test can run the pipeline again without changing what the other tests read. The
    copied metadata still points at the first run's artifacts, which stay where they are:
    TFX serves them from its cache as it would in the original root."""
    root, serving = tmp_path / "root", tmp_path / "serving"
    shutil.copytree(run.root, root)
    shutil.copytree(run.serving, serving)
    return Run(run.catalog, root, serving, "")


def _only(root: Path, component: str, output: str) -> Path:
    found = sorted((root / component / output).iterdir(), key=lambda p: int(p.name))
    assert found, f"{component}/{output} has no artifact"
    return found[-1]


def test_every_artifact_is_there(fashion_run):
    import tensorflow as tf

    catalog, root, serving, _ = fashion_run
    examples = _only(root, "CatalogExampleGen", "examples")
    for split in ("train", "calibration", "eval"):
        assert list((examples / f"Split-{split}").glob("*.gz")), split
    rejected = _only(root, "CatalogExampleGen", "rejected")
    counts = json.loads((rejected / "counts.json").read_text())
    assert counts["ingested"] + counts["rejected"] == TRAIN_ROWS
    assert (rejected / "rejected.csv").read_text().startswith("row,id,reason")
    taxonomy = json.loads((_only(root, "TaxonomyGen", "taxonomy") / "taxonomy.json").read_text())
    assert len(taxonomy["levels"]) == 3
    assert list(_only(root, "StatisticsGen", "statistics").glob("Split-*"))
    assert (_only(root, "TaxonomyTransform", "transform_graph") / "transform_fn").exists()
    model = _only(root, "TaxonomyTrainer", "model") / "Format-Serving"
    assert (model / "saved_model.pb").exists()
    info = json.loads((model / "assets.extra" / "model_info.json").read_text())
    assert info["loss_history"][-1] < info["loss_history"][0]
    assert 0 < info["train_seconds"] and info["train_examples_per_second"] > 0  # bench/training.py reads these
    # The word mapper, fitted by the Embedder on the train split's titles alone, is in the
    # model's assets (categorize maps request titles with it) and in the pushed version.
    from schema import features
    from schema.encoders.word_mapper import FILE_NAME, WordMapper, words
    from schema.examples import first_bytes, iter_serialized

    assert info["word_mapper"] is True
    mapper = WordMapper.load(str(model / "assets.extra" / FILE_NAME))
    train_words = {w for batch in iter_serialized(str(examples / "Split-train")) for r in batch
                   for w in words(first_bytes(tf.train.Example.FromString(r), features.TITLE).decode())}
    assert set(mapper.vocabulary) | set(mapper.known_only) == train_words
    pushed = serving / "fashion" / _versions(serving, "fashion")[0]
    assert (pushed / "assets.extra" / FILE_NAME).read_bytes() == (model / "assets.extra" / FILE_NAME).read_bytes()
    # TensorBoard logs in the Trainer's model_run artifact, where the report links them.
    model_run = _only(root, "TaxonomyTrainer", "model_run")
    assert list(model_run.glob("train/events.out.tfevents.*")) and list(model_run.glob("validation/events.*"))
    assert info["tensorboard_logs"] == str(model_run)
    report_page = (_only(root, "ReviewReport", "report") / "index.html").read_text()
    assert f"tensorboard --logdir {model_run}" in report_page
    saved = [name for name, _ in tf.train.list_variables(str(model / "variables" / "variables"))]
    assert any(n.startswith("model_variables/") for n in saved)  # the classifier's weights (trainer/export.py)
    assert not any("optimizer" in n or "metrics" in n for n in saved)  # weights only: no Adam slots, no metric totals
    # The serving signature and the weights it reads, not the classifier as Keras (its layers'
    # traced call functions and metrics, which only reloading it as Keras would use).
    from tensorflow.core.protobuf import saved_model_pb2

    graph = saved_model_pb2.SavedModel.FromString((model / "saved_model.pb").read_bytes()).meta_graphs[0]
    kinds = {n.user_object.identifier for n in graph.object_graph_def.nodes if n.HasField("user_object")}
    assert not kinds & {"_tf_keras_layer", "_tf_keras_metric", "_tf_keras_network"}, kinds

    import tensorflow_model_analysis as tfma

    evaluation = _only(root, "Evaluator", "evaluation")
    result = tfma.load_eval_result(str(evaluation))
    overall = [m for s, m in result.slicing_metrics if s == ()][0]
    values = overall[""][""]
    for name in ("hierarchical_f1", "hierarchical_precision", "hierarchical_recall", "coverage",
                 "accuracy_level_1", "accuracy_level_2", "accuracy_level_3", "leaf_accuracy"):
        assert name in values, name
    # Every value carries its confidence interval: TFMA shows it as a bounded value.
    for name in ("accuracy_level_1", "hierarchical_f1", "leaf_accuracy"):
        bounded = values[name]["boundedValue"]
        assert bounded["lowerBound"] <= bounded["value"] <= bounded["upperBound"], name
    assert values["accuracy_level_1"]["boundedValue"]["value"] > 0.8
    assert values["hierarchical_f1"]["boundedValue"]["value"] > 0.5
    assert values["example_count"]["doubleValue"] > 0
    slices = {s for s, _ in result.slicing_metrics}
    assert any(s and s[0][0] == "level_1" for s in slices)
    assert any(s and s[0][0] == "gender" for s in slices)
    assert (_only(root, "Evaluator", "blessing") / "BLESSED").exists()
    assert len(_versions(serving, "fashion")) == 1


def test_status_lists_runs_from_metadata(fashion_run, capsys):
    """`pipeline.py status` reads the runs back from ML Metadata: start, executed vs cached,
    blessed and the pushed version."""
    catalog, root, serving, _ = fashion_run
    capsys.readouterr()
    assert pipeline.main(["status", "--pipeline-root", str(root), "--spec", "fashion"]) == 0
    out = capsys.readouterr().out
    from components.run_status import list_runs
    from schema.mlmd import open_store

    runs = list_runs(open_store(str(root / "metadata.sqlite")), "categorize-fashion")
    assert runs and f"{len(runs)} run(s) of categorize-fashion" in out
    first = runs[0]
    assert "CatalogExampleGen" in first["executed"] and "TaxonomyTrainer" in first["executed"]
    assert not first["running"] and not first["failed"]
    assert first["blessed"] is True and first["pushed"]
    assert first["pushed_version"] == _versions(serving, "fashion")[0]
    assert f"- run {first['run_id']}, started " in out
    assert f"blessed: yes; pushed: version {first['pushed_version']} -> " in out
    # Per-component wall times, for every executed node and nothing else.
    assert set(first["seconds"]) == set(first["executed"]) and all(t >= 0 for t in first["seconds"].values())
    assert first["seconds"]["TaxonomyTrainer"] > 0
    assert f"TaxonomyTrainer ({first['seconds']['TaxonomyTrainer']:.0f}s)" in out


def test_console_says_each_component_and_the_embedding_rate(fashion_run):
    """`pipeline.py run`'s console: a line as each component starts and one as it ends,
    with its duration; the Embedder's rows and rate; the summary; no library log records."""
    lines = fashion_run.console.splitlines()
    spans = {}
    for node in ("CatalogExampleGen", "StatisticsGen", "StrictExampleValidator", "TaxonomyGen", "Embedder",
                 "TaxonomyTransform", "TaxonomyTrainer", "Evaluator", "ReviewReport", "SafePusher"):
        starts = [i for i, line in enumerate(lines) if line.endswith(f"] {node} ...")]
        ends = [i for i, line in enumerate(lines) if re.search(rf"\] {node} done in \d+\.\ds$", line)]
        assert len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0], node
        spans[node] = lines[starts[0]:ends[0]]
    assert any(re.search(r"\] Embedder: [\d,]+ rows, [\d,]+ rows/s$", line) for line in spans["Embedder"])
    assert "pushed: True" in fashion_run.console
    for noise in ("Resolved inputs", "Going to run a new execution", "INFO:absl", "WARNING:absl", "FutureWarning"):
        assert noise not in fashion_run.console, noise


def _is_prefix(path: str, truth: str) -> bool:
    levels, true_levels = path.split(" > "), truth.split(" > ")
    return true_levels[: len(levels)] == levels


def _categorize(csv_path: Path, spec: str, serving: Path, out: Path, *extra: str) -> list[dict]:
    assert pipeline.main(["categorize", "--catalog", str(csv_path), "--spec", spec, "--output", str(out),
                          "--serving-dir", str(serving), *extra]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_categorize_unseen_rows(fashion_run, tmp_path):
    catalog, root, serving, _ = fashion_run
    csv_path, ids = _unseen_catalog(catalog, "fashion", tmp_path / "unseen")
    full = _categorize(csv_path, "fashion", serving, tmp_path / "full.csv", "--no-threshold")
    assert list(full[0].keys()) == ["id", "category_path", "confidence", "depth", "reason"]
    assert [r["id"] for r in full] == ids  # one row per input row, in order
    assert "duplicate id" in full[5]["reason"] and full[5]["category_path"] == ""
    assert "no title" in full[6]["reason"]
    truth = {p.id: p.category_path for p in read_catalog(csv_path, load_spec("fashion")) if isinstance(p, Product)}
    predicted = [r for r in full if r["category_path"]]
    assert len(predicted) == len(truth)  # without thresholds every readable row gets a path
    for r in predicted:
        assert 1 <= int(r["depth"]) <= 3 and 0 < float(r["confidence"]) <= 1
        assert len(r["category_path"].split(" > ")) == int(r["depth"])
    top_right = sum(r["category_path"].split(" > ")[0] == truth[r["id"]].split(" > ")[0] for r in predicted)
    assert top_right / len(predicted) > 0.8

    # Smart thresholding: a prefix of the decoded path, or nothing with the reason said.
    backed = _categorize(csv_path, "fashion", serving, tmp_path / "thresholded.csv")
    assert [r["id"] for r in backed] == ids
    for f, b in zip(full, backed):
        if f["category_path"] and b["category_path"]:
            assert _is_prefix(b["category_path"], f["category_path"])
        if f["category_path"]:
            assert b["category_path"] or b["reason"] == "confidence below the top-level threshold"
    kept = [b for b in backed if b["category_path"]]
    assert len(kept) > 0.5 * len(truth)

    def node_precision(rows):  # share of returned paths that are the truth or an ancestor of it
        return sum(_is_prefix(r["category_path"], truth[r["id"]]) for r in rows) / len(rows)

    # Backing off trades coverage for precision: what is returned is no less often right.
    assert node_precision(kept) >= node_precision(predicted) - 0.02


def test_unchanged_rerun_is_served_from_the_cache_and_not_pushed_again(fashion_run, tmp_path, capsys):
    """`make run` twice: the candidate is the first run's model, from the cache, and the
    incumbent is the one the first run compared it with, not the candidate itself (which
    the first run pushed). So the second run repeats no work: every component, the
    Evaluator and the pusher included, is served from the cache, and nothing is pushed."""
    from schema.mlmd import open_store
    from components.run_status import list_runs

    catalog, root, _, _ = _copy_of(fashion_run, tmp_path)
    serving = fashion_run.serving  # the pusher's destination is part of its cache key
    before = _versions(serving, "fashion")
    _run(catalog, "fashion", root, serving)
    out = capsys.readouterr().out
    first, second = list_runs(open_store(str(root / "metadata.sqlite")), "categorize-fashion")
    executed = set(first["executed"]) - {"latest_blessed_model_resolver"}
    assert {"TaxonomyTrainer", "Evaluator", "SafePusher"} <= executed
    assert executed <= set(second["cached"]), sorted(executed - set(second["cached"]))
    assert set(second["executed"]) <= {"latest_blessed_model_resolver"}
    assert "every component was served from the cache" in out
    assert "pushed by an earlier run" in out
    assert _versions(serving, "fashion") == before


def test_review_notebook_runs_headless(fashion_run):
    """evaluator/review.ipynb as a reviewer runs it, against this run's Evaluator and
    ReviewReport outputs: every cell must succeed (TFMA's load_eval_result, the slicing
    view, the comparison table with intervals, the verdict in the gate's words)."""
    import nbformat
    from nbclient import NotebookClient

    _, root, _, _ = fashion_run
    notebook = nbformat.read(str(Path(pipeline.PROJECT_ROOT) / "evaluator" / "review.ipynb"), as_version=4)
    env = {"EVAL_URI": str(_only(root, "Evaluator", "evaluation")),
           "REPORT_URI": str(_only(root, "ReviewReport", "report"))}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits them
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(pipeline.PROJECT_ROOT)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert not any(o.get("output_type") == "error" for c in notebook.cells for o in c.get("outputs", []))
    assert "slices" in text and "validation_ok:" in text
    counts = [line for line in text.splitlines() if line.startswith("products per slice: ")]
    assert counts and "'Overall': " in counts[0]
    assert "leaf_accuracy" in text and "difference" in text and "[" in text  # intervals in the table


def test_worse_candidate_trained_by_two_local_workers_is_not_pushed(fashion_run, tmp_path, capsys):
    """Shuffled labels make a worse candidate, which the gate refuses. It is trained with
    `--train-workers 2`: two processes with TF_CONFIG (chief + worker) train one model with
    MultiWorkerMirroredStrategy; both finish (a failed worker fails the run), the loss goes
    down, and only the chief's model is exported."""
    catalog, root, serving, _ = _copy_of(fashion_run, tmp_path)
    before = _versions(serving, "fashion")
    _run(catalog, "fashion", root, serving, "--shuffle-labels", "--train-workers", "2")
    assert _versions(serving, "fashion") == before
    out = capsys.readouterr().out
    assert "blessed: False" in out and "no significant win on Overall" in out

    model_root = _only(root, "TaxonomyTrainer", "model")
    info = json.loads((model_root / "Format-Serving" / "assets.extra" / "model_info.json").read_text())
    assert info["workers"] == 2
    assert info["loss_history"][-1] < info["loss_history"][0]
    assert sorted(p.name for p in model_root.iterdir()) == ["Format-Serving"]


def test_better_candidate_is_pushed_as_a_new_version(fashion_run, tmp_path, capsys):
    """Twice the data beats the production model, so it is pushed next to it."""
    catalog, root, serving, _ = _copy_of(fashion_run, tmp_path)
    before = _versions(serving, "fashion")
    argv = ["run", "--catalog", str(catalog), "--spec", "fashion", "--pipeline-root", str(root),
            "--serving-dir", str(serving), "--max-rows", str(2 * TRAIN_ROWS), "--preset", "small"]
    assert pipeline.main(argv) == 0
    out = capsys.readouterr().out
    assert "baseline: latest_blessed model" in out
    after = _versions(serving, "fashion")
    assert len(after) == len(before) + 1 and set(before) < set(after)
    metrics = {}
    for line in out.splitlines():
        if line.startswith("metrics ["):
            name = line.split("[")[1].split("]")[0]
            metrics[name] = float(line.split("leaf_accuracy=")[1].split(",")[0])
    assert metrics["candidate"] > metrics["baseline"]


def test_flipkart_text_only_catalog(flipkart_run, tmp_path):
    if flipkart_run is None:
        pytest.skip("../shared/datasets/flipkart is not present")
    process, base = flipkart_run
    assert process.wait(timeout=FLIPKART_TIMEOUT_S) == 0, (base / "run.log").read_text(errors="replace")[-4000:]
    assert "pushed: True" in (base / "run.log").read_text(errors="replace")
    catalog, serving = shared_catalog("flipkart"), base / "serving"
    assert len(_versions(serving, "flipkart")) == 1
    csv_path, ids = _unseen_catalog(catalog, "flipkart", tmp_path / "unseen", n=100)
    rows = _categorize(csv_path, "flipkart", serving, tmp_path / "out.csv", "--no-threshold")
    assert [r["id"] for r in rows] == ids
    assert sum(bool(r["category_path"]) for r in rows) == len(ids) - 2  # all but the two bad rows
