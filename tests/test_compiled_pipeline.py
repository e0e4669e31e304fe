"""The compiled pipeline really runs: every task, through TFX's own container entrypoints.

`tests/kfp_harness` plays the backend. Each target's spec is compiled as `pipeline.py
compile` would, then run twice on a catalog sample under a local root:

- Vertex AI Pipelines (spec 2.0, legacy parameters): the ExampleGen's pre-cache-check
  driver runs first, the latest-blessed resolver finds nothing on the first run and the
  blessed model on the second, and the Trainer's Vertex AI CustomJob trains with 2
  replicas through `tfx.scripts.run_executor` with the variables Vertex sets.
- open-source KFP 2.x (spec 2.1 `parameterValues`): no resolver, the catalog fingerprint
  is the pipeline parameter `submit` computes, the incumbent is the newest pushed version.

The first run pushes a model; the second re-uses every cached step up to the Trainers,
compares the same candidate with the model it pushed, and does not push again.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubeflow import compiler, submit
from kubeflow.settings import KubeflowSettings
from schema import serving_layout
from tests.conftest import shared_catalog
from tests.kfp_harness.launcher import KFP, REPO_ROOT, VERTEX, Launcher, Store
from tests.kfp_harness.local_vertex_jobs import LOG_DIR_ENV

pytestmark = pytest.mark.e2e
ROWS = 1200
IMAGE = "registry.example/categorize-pipeline:0123456789ab"
UPSTREAM = ("CatalogExampleGen", "ImportSchemaGen", "StatisticsGen", "StrictExampleValidator", "TaxonomyGen",
            "Embedder", "TaxonomyTransform", "TaxonomyTrainer", "BagOfWordsTrainer")
RESOLVERS = ("latest_blessed_model_resolver-model-blessing-resolver", "latest_blessed_model_resolver-model-resolver")


def _compile(target: str, work: Path, catalog: Path, workers: int):
    settings = KubeflowSettings(
        target=target, project="test-project", bucket=str(work / "bucket"), catalog=str(catalog), image=IMAGE,
        train_workers=workers, beam_runner="DirectRunner",
        beam_args=("--direct_running_mode=in_memory", "--direct_num_workers=1"),
        code_root=str(REPO_ROOT),  # the checkout plays the image's installed package
    )
    config = compiler.cluster_pipeline_config("fashion", settings, preset="small", max_rows=ROWS,
                                              embedding_cache_dir=str(work / "embeddings"))
    return config, compiler.compile_pipeline(config, settings, work / "pipeline.json")


def _two_runs(tmp_path_factory, catalog, target, shape, workers):
    work = tmp_path_factory.mktemp(f"compiled_{target}")
    config, job = _compile(target, work, catalog, workers)
    params = submit.catalog_parameters(job)  # what `submit` sends with the run
    store = Store()
    env = {LOG_DIR_ENV: str(work / "vertex_jobs")}  # the replicas' logs, when a CustomJob runs
    first = Launcher(job, shape, store, work, parameter_values=params, env=env).run("run-1")
    pushed_after_first = [p.name for p in serving_layout.version_dirs(config.push_dir)]
    second = Launcher(job, shape, store, work, parameter_values=params, env=env).run("run-2")
    return config, job, work, first, second, pushed_after_first


@pytest.fixture(scope="module")
def catalog(demo_catalog):
    return shared_catalog("fashion") or demo_catalog


@pytest.fixture(scope="module")
def vertex_runs(tmp_path_factory, catalog):
    return _two_runs(tmp_path_factory, catalog, "vertex", VERTEX, workers=2)


@pytest.fixture(scope="module")
def kfp_runs(tmp_path_factory, catalog):
    return _two_runs(tmp_path_factory, catalog, "kfp", KFP, workers=1)


def _metadata(result, key):
    (artifact,) = result.outputs[key]
    return artifact["metadata"]


def _first_run_pushes(config, first, pushed):
    containers = {name: r for name, r in first.items() if name not in RESOLVERS}
    assert {r.status for r in containers.values()} == {"ran"}
    assert _metadata(first["BaselineSelector"], "baseline")["baseline_source"] == "bag_of_words"
    assert _metadata(first["Evaluator"], "blessing")["blessed"] == 1
    assert len(pushed) == 1
    version, broken = serving_layout.newest_complete(config.push_dir)
    assert version is not None and not broken and version.name == pushed[0]
    assert (Path(version) / "model_card.json").exists()


def _second_run_reuses_the_cache_and_ties(config, first, second, pushed, incumbent_source):
    assert {name: second[name].status for name in UPSTREAM} == {name: "cached" for name in UPSTREAM}
    for name in UPSTREAM:  # the very artifacts of the first run
        assert second[name].outputs == first[name].outputs
    assert second["BaselineSelector"].status == "ran"
    assert _metadata(second["BaselineSelector"], "baseline")["baseline_source"] == incumbent_source
    assert second["Evaluator"].status == "ran"
    # The candidate is the model pushed by the first run: a tie, which is not a win.
    assert _metadata(second["Evaluator"], "blessing")["blessed"] == 0
    assert [p.name for p in serving_layout.version_dirs(config.push_dir)] == pushed


def test_vertex_first_run_trains_on_two_replicas_and_pushes(vertex_runs):
    config, job, work, first, _, pushed = vertex_runs
    assert all(first[name].outputs == {"model_blessing": []} or first[name].outputs == {"model": []}
               for name in RESOLVERS)
    _first_run_pushes(config, first, pushed)
    trainer_log = (work / "logs" / "TaxonomyTrainer.log").read_text(errors="replace")
    assert "replica exit codes {'workerpool0-0': 0, 'workerpool1-0': 0}" in trainer_log
    chief, worker = ((work / "vertex_jobs" / "1" / f"{name}.log").read_text(errors="replace")
                     for name in ("workerpool0-0", "workerpool1-0"))
    assert "num_workers = 2" in chief and "num_workers = 2" in worker  # one MultiWorkerMirroredStrategy
    assert "Training complete. Model written to" in chief and "Training complete" not in worker
    # The pre-cache check's fingerprint (CSV and photos) reached the ExampleGen's execution.
    driver_output = json.loads(next((work / "bucket").rglob("CatalogExampleGen_*/executor_output.json")).read_text())
    examples = driver_output["artifacts"]["examples"]["artifacts"][0]["metadata"]
    assert "catalog files:" in examples["input_fingerprint"]


def test_vertex_second_run_compares_with_the_blessed_model(vertex_runs):
    config, _, _, first, second, pushed = vertex_runs
    (resolved,) = second[RESOLVERS[1]].outputs["model"]
    (candidate,) = first["TaxonomyTrainer"].outputs["model"]
    assert resolved["name"] == candidate["name"] and resolved["uri"] == candidate["uri"]
    _second_run_reuses_the_cache_and_ties(config, first, second, pushed, "latest_blessed")


def test_kfp_first_run_pushes(kfp_runs):
    config, job, _, first, _, pushed = kfp_runs
    assert not any("resolver" in e for e in job["pipelineSpec"]["deploymentSpec"]["executors"].values())
    _first_run_pushes(config, first, pushed)


def test_kfp_second_run_compares_with_the_pushed_model(kfp_runs):
    config, _, _, first, second, pushed = kfp_runs
    baseline = _metadata(second["BaselineSelector"], "baseline")
    assert baseline["source_uri"] == str(serving_layout.newest_complete(config.push_dir)[0])
    _second_run_reuses_the_cache_and_ties(config, first, second, pushed, "latest_pushed")


def test_kfp_backend_refuses_the_vertex_spec(tmp_path, catalog):
    _, job = _compile("vertex", tmp_path, catalog, workers=1)
    with pytest.raises(ValueError, match="resolver executors not implemented"):
        Launcher(job, KFP, Store(), tmp_path)
