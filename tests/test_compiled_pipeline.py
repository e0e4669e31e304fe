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

import concurrent.futures
import json
import re
from pathlib import Path

import pytest

from kubeflow import compiler, submit
from kubeflow.settings import KubeflowSettings
from schema import serving_layout
from schema.encoders import word_mapper
from tests.conftest import shared_catalog
from tests.kfp_harness.launcher import KFP, REPO_ROOT, VERTEX, Launcher, Store
from tests.kfp_harness.local_vertex_jobs import CUSTOM_JOB_FILE, LOG_DIR_ENV

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


def _two_runs(work: Path, config, job, shape):
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
def both_targets(tmp_path_factory, catalog):
    """Both targets' two runs, side by side: two backends in separate roots and stores, as two
    clusters would run them (one run alone leaves a core idle while a single task imports)."""
    runs = {}
    for target, shape, workers in (("vertex", VERTEX, 2), ("kfp", KFP, 1)):
        work = tmp_path_factory.mktemp(f"compiled_{target}")
        runs[target] = (work, *_compile(target, work, catalog, workers), shape)  # compiled one at a time
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {target: pool.submit(_two_runs, *args) for target, args in runs.items()}
        concurrent.futures.wait(futures.values())
    return futures


@pytest.fixture(scope="module")
def vertex_runs(both_targets):
    return both_targets["vertex"].result()  # a failed run fails the tests that read it


@pytest.fixture(scope="module")
def kfp_runs(both_targets):
    return both_targets["kfp"].result()


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
    # The pre-cache check's fingerprint (CSV and photos) reached the ExampleGen's execution.
    driver_output = json.loads(next((work / "bucket").rglob("CatalogExampleGen_*/executor_output.json")).read_text())
    examples = driver_output["artifacts"]["examples"]["artifacts"][0]["metadata"]
    assert "catalog files:" in examples["input_fingerprint"]


def test_vertex_trainer_step_is_one_two_replica_custom_job(vertex_runs):
    """The Trainer's step built a CustomJob through TFX; each replica ran the command TFX put
    in it (`python -m tfx.scripts.run_executor --executor_class_path ... --inputs ...
    --outputs ... --exec-properties ...`) with the TF_CONFIG and CLUSTER_SPEC Vertex AI sets
    (tests/kfp_harness/local_vertex_jobs.py). Both exit 0 after training together, and only
    the chief writes the model."""
    _, _, work, first, _, _ = vertex_runs
    jobs = work / "vertex_jobs"
    assert sorted(p.name for p in jobs.iterdir()) == ["1"]  # one CustomJob: the candidate's
    custom_job = json.loads((jobs / "1" / CUSTOM_JOB_FILE).read_text())
    pools = custom_job["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 1]
    command = pools[1]["container_spec"]["command"]
    assert command[:5] == ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path",
                           "components.taxonomy_aware.executor.ReplicaTrainerExecutor"]
    assert command[5::2] == ["--inputs", "--outputs", "--exec-properties"]

    # Trained together: both saw a cluster of 2, split each global batch of 2 x batch_size
    # between them (half the steps of one worker), and ran the same steps with the same
    # all-reduced loss, epoch by epoch.
    chief, worker = ((jobs / "1" / f"{name}.log").read_text(errors="replace")
                     for name in ("workerpool0-0", "workerpool1-0"))
    (model,), (model_run,) = first["TaxonomyTrainer"].outputs["model"], first["TaxonomyTrainer"].outputs["model_run"]
    serving = Path(model["uri"]) / "Format-Serving"
    info = json.loads((serving / serving_layout.ASSETS_EXTRA / serving_layout.ASSETS_INFO).read_text())
    plan = re.compile(r"training model on (\d+) examples: (\d+) epochs x (\d+) steps, (\d+) worker\(s\)")
    assert "num_workers = 2" in chief and "num_workers = 2" in worker  # one MultiWorkerMirroredStrategy
    assert plan.findall(chief) == plan.findall(worker)
    examples, epochs, steps, workers = map(int, plan.findall(chief)[0])
    assert workers == 2 and steps == -(-examples // (2 * info["preset"]["batch_size"]))
    progress = re.compile(r"^(\d+)/\1 - \d+s - loss: ([\d.]+)", re.M)
    chief_epochs, worker_epochs = progress.findall(chief), progress.findall(worker)
    assert chief_epochs == worker_epochs
    assert [int(n) for n, _ in chief_epochs] == [steps] * epochs

    # Only the chief wrote the model: a loadable SavedModel with its assets, and nothing else.
    assert f"exported hierarchical model to {serving}" in chief and "Training complete. Model written to" in chief
    assert "the chief writes the model" in worker and "Training complete" not in worker
    assert model["uri"] not in re.search(r"saved its copy of the hierarchical model to scratch (\S+)", worker)[1]
    assert sorted(p.name for p in Path(model["uri"]).iterdir()) == ["Format-Serving"]
    assert sorted(p.name for p in (serving / serving_layout.ASSETS_EXTRA).iterdir()) == sorted([
        serving_layout.ASSETS_INFO, serving_layout.ASSETS_TAXONOMY, serving_layout.ASSETS_THRESHOLDS,
        word_mapper.FILE_NAME])
    assert info["workers"] == 2 and info["loss_history"][-1] < info["loss_history"][0]
    # The model_run artifact holds the chief's TensorBoard logs alone: one event file per
    # folder (a second writer would add its own file beside it).
    event_files = sorted(Path(model_run["uri"]).rglob("events.out.tfevents.*"))
    assert event_files and {p.parent.name for p in event_files} == {"train", "validation"}
    assert len(event_files) == len({p.parent for p in event_files})


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
