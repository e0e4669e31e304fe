"""Training replicas: which task is the chief (TF_CONFIG and Vertex AI's CLUSTER_SPEC), and
what `ReplicaTrainerExecutor` does on the chief and on the other replicas.

The executor tests run in-process with a trivial run_fn that follows the project's
contract (the chief writes the serving model, other replicas write to their own scratch);
the real model on two real replicas is tests/test_pipeline_e2e.py's Vertex AI test.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer import distribution

CHIEF, WORKER = "cmle-training-workerpool0-ab-0:2222", "cmle-training-workerpool1-ab-0:2222"
WORKER_1 = "cmle-training-workerpool1-ab-1:2222"


def _vertex_tf_config(role: str, index: int) -> dict:
    """TF_CONFIG as Vertex AI writes it (with its `environment` and `job` fields)."""
    return {"cluster": {"chief": [CHIEF], "worker": [WORKER, WORKER_1]}, "task": {"type": role, "index": index},
            "environment": "cloud", "job": {"worker_pool_specs": [{"replica_count": 1}, {"replica_count": 2}]}}


def _cluster_spec(pool: int, index: int, **pools) -> dict:
    return {"cluster": pools or {"workerpool0": [CHIEF], "workerpool1": [WORKER, WORKER_1]},
            "environment": "cloud", "task": {"type": f"workerpool{pool}", "index": index}}


@pytest.mark.parametrize("role,index,chief", [("chief", 0, True), ("worker", 0, False), ("worker", 1, False),
                                              ("evaluator", 0, False)])
def test_chief_and_cluster_size_from_vertex_tf_config(role, index, chief):
    config = distribution.cluster_from_env({"TF_CONFIG": json.dumps(_vertex_tf_config(role, index))})
    assert distribution.is_chief(config) is chief
    assert distribution.num_workers(config) == 3
    assert distribution.task_role(config) == (role, index)


def test_worker_0_is_chief_only_in_a_cluster_without_chief():
    chiefless = {"cluster": {"worker": [WORKER, WORKER_1]}, "task": {"type": "worker", "index": 0}}
    assert distribution.is_chief(chiefless)
    assert not distribution.is_chief({**chiefless, "task": {"type": "worker", "index": 1}})
    assert distribution.is_chief({})  # not in a cluster: the one process is the chief


@pytest.mark.parametrize("pool,index,role,chief", [(0, 0, "chief", True), (1, 0, "worker", False),
                                                   (1, 1, "worker", False), (3, 0, "evaluator", False)])
def test_cluster_spec_alone_gives_the_same_roles(pool, index, role, chief):
    """CLUSTER_SPEC without TF_CONFIG: workerpool0 is the chief, workerpool1 the workers,
    workerpool2 parameter servers, workerpool3 evaluators (outside the TF cluster)."""
    spec = _cluster_spec(pool, index, workerpool0=[CHIEF], workerpool1=[WORKER, WORKER_1], workerpool3=["e:1"])
    config = distribution.cluster_from_env({"CLUSTER_SPEC": json.dumps(spec)})
    assert config["cluster"] == {"chief": [CHIEF], "worker": [WORKER, WORKER_1]}
    assert distribution.task_role(config) == (role, index)
    assert distribution.is_chief(config) is chief and distribution.num_workers(config) == 3


def test_tf_config_wins_over_cluster_spec_and_single_replica_is_chief():
    environ = {"TF_CONFIG": json.dumps(_vertex_tf_config("worker", 1)), "CLUSTER_SPEC": json.dumps(_cluster_spec(0, 0))}
    assert distribution.task_role(distribution.cluster_from_env(environ)) == ("worker", 1)
    single = distribution.cluster_from_env({"CLUSTER_SPEC": json.dumps(_cluster_spec(0, 0, workerpool0=[CHIEF]))})
    assert distribution.is_chief(single) and distribution.num_workers(single) == 1


def test_cluster_spec_is_exported_as_tf_config_only_for_a_multi_replica_job():
    environ = {"CLUSTER_SPEC": json.dumps(_cluster_spec(1, 1))}
    distribution.export_tf_config(environ)
    assert json.loads(environ["TF_CONFIG"]) == {"cluster": {"chief": [CHIEF], "worker": [WORKER, WORKER_1]},
                                                "task": {"type": "worker", "index": 1}}
    single = {"CLUSTER_SPEC": json.dumps(_cluster_spec(0, 0, workerpool0=[CHIEF]))}
    distribution.export_tf_config(single)
    assert "TF_CONFIG" not in single
    given = {"TF_CONFIG": '{"cluster": {}}', "CLUSTER_SPEC": json.dumps(_cluster_spec(1, 0))}
    distribution.export_tf_config(given)
    assert given["TF_CONFIG"] == '{"cluster": {}}'


@pytest.mark.parametrize("bad,message", [({"task": {"type": "chief", "index": 0}}, "workerpool0..3"),
                                         ({"cluster": {"workerpool7": ["h:1"]}}, "workerpool7")])
def test_malformed_cluster_spec_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        distribution.cluster_from_env({"CLUSTER_SPEC": json.dumps(bad)})


# -- ReplicaTrainerExecutor with a trivial run_fn ------------------------------------------
CALLS: list[dict] = []


def recording_run_fn(fn_args) -> None:
    """Follows run_fn's contract: the chief writes the serving model, others write scratch."""
    chief = distribution.is_chief()
    CALLS.append({"chief": chief, "serving_model_dir": fn_args.serving_model_dir,
                  "taxonomy_uri": fn_args.custom_config.get("taxonomy_uri")})
    if chief and not fn_args.custom_config.get("forget_to_export"):
        Path(fn_args.serving_model_dir).mkdir(parents=True)
        (Path(fn_args.serving_model_dir) / "saved_model.pb").write_bytes(b"model")


def _run_replica(tmp_path: Path, monkeypatch, environ: dict, **config) -> tuple[Path, Path]:
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import json_utils, proto_utils

    from components.taxonomy_aware.executor import ReplicaTrainerExecutor

    for name in ("TF_CONFIG", "CLUSTER_SPEC"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, json.dumps(value))
    examples = standard_artifacts.Examples()
    examples.uri, examples.split_names = str(tmp_path / "examples"), '["train", "calibration"]'
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    CALLS.clear()
    ReplicaTrainerExecutor().Do(
        {"examples": [examples]},
        {"model": [model], "model_run": [model_run]},
        {"run_fn": f"{__name__}.recording_run_fn",
         "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
         "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["calibration"])),
         "custom_config": json_utils.dumps({"taxonomy_uri": "gs://b/taxonomy/1", **config})},
    )
    return Path(model.uri), Path(model_run.uri)


@pytest.mark.parametrize("environ", [{"TF_CONFIG": _vertex_tf_config("chief", 0)},
                                     {"CLUSTER_SPEC": _cluster_spec(0, 0)}, {}])
def test_chief_runs_run_fn_and_its_model_is_checked(tmp_path, monkeypatch, environ):
    model, _ = _run_replica(tmp_path, monkeypatch, environ)
    assert [c["chief"] for c in CALLS] == [True] and CALLS[0]["taxonomy_uri"] == "gs://b/taxonomy/1"
    assert (model / "Format-Serving" / "saved_model.pb").read_bytes() == b"model"
    with pytest.raises(RuntimeError, match="run_fn failed to generate model"):
        _run_replica(tmp_path / "again", monkeypatch, environ, forget_to_export=True)


@pytest.mark.parametrize("environ", [{"TF_CONFIG": _vertex_tf_config("worker", 1)},
                                     {"TF_CONFIG": _vertex_tf_config("worker", 0), "CLUSTER_SPEC": _cluster_spec(1, 0)},
                                     {"CLUSTER_SPEC": _cluster_spec(1, 1)}])
def test_non_chief_trains_returns_normally_and_writes_no_output(tmp_path, monkeypatch, environ):
    model, model_run = _run_replica(tmp_path, monkeypatch, environ)
    assert [c["chief"] for c in CALLS] == [False]
    assert CALLS[0]["serving_model_dir"] == str(model / "Format-Serving")  # it knew where, and left it alone
    assert not model.exists() and not model_run.exists()


@pytest.mark.parametrize("environ", [{"TF_CONFIG": _vertex_tf_config("evaluator", 0)},
                                     {"CLUSTER_SPEC": _cluster_spec(2, 0, workerpool0=[CHIEF], workerpool2=["p:1"])}])
def test_parameter_server_or_evaluator_replica_is_refused(tmp_path, monkeypatch, environ):
    with pytest.raises(ValueError, match="worker pools 0 and 1 only"):
        _run_replica(tmp_path, monkeypatch, environ)
    assert CALLS == []


# -- the process supervisor of --train-workers (and of tests/kfp_harness/local_vertex_jobs.py) ---------------
def _python(code: str) -> list[str]:
    import sys

    return [sys.executable, "-c", code]


def test_supervisor_returns_every_exit_code(tmp_path):
    from trainer.local_cluster import supervise

    codes = supervise([("a", _python("print('a ran')"), {}), ("b", _python("pass"), {})], tmp_path, 60)
    assert codes == {"a": 0, "b": 0} and (tmp_path / "a.log").read_text() == "a ran\n"


def test_supervisor_stops_the_others_when_a_replica_fails(tmp_path):
    import time

    from trainer.local_cluster import supervise

    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"failing exited with 3.*\n.*it broke"):
        supervise([("waiting", _python("import time; time.sleep(60)"), {}),
                   ("failing", _python("import sys; print('it broke', flush=True); sys.exit(3)"), {})], tmp_path, 60)
    assert time.monotonic() - started < 30  # the waiting one was killed, not waited for
    with pytest.raises(RuntimeError, match="timed out after 1s"):
        supervise([("slow", _python("import time; time.sleep(60)"), {})], tmp_path, 1)
