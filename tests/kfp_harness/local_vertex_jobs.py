"""Vertex AI Training, played locally: a CustomJob's worker pools become processes.

TFX's Vertex AI extension talks to Google Cloud through one class,
`google.cloud.aiplatform.gapic.JobServiceClient` (`create_custom_job`, `get_custom_job`).
`LocalJobService` stands in for it: each replica of each pool runs the pool's container
command (`python -m tfx.scripts.run_executor ...`, exactly as TFX built it) as a process
on this machine, with the variables Vertex AI sets on a replica: CLUSTER_SPEC (pools
`workerpool0`, `workerpool1`, ...) and, for TensorFlow, TF_CONFIG (pool 0 is `chief`,
pool 1 `worker`, pool 2 `ps`), both with the `environment` and `job` fields, on free
localhost ports. The job succeeds when every replica exits 0; Vertex AI fails a job whose
replica fails.

Around a container entrypoint (the compiled-pipeline harness):
`python -m tests.kfp_harness.local_vertex_jobs MODULE ARGS...` runs MODULE with the
stand-in installed; each CustomJob's request (`custom_job.json`) and replica logs go to
`$LOCAL_VERTEX_LOG_DIR/<job number>/` (default: a temp dir).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

TF_ROLES = ("chief", "worker", "ps", "evaluator")  # Vertex AI: pool index -> TF_CONFIG role
LOG_DIR_ENV = "LOCAL_VERTEX_LOG_DIR"
CUSTOM_JOB_FILE = "custom_job.json"  # the CustomJob as TFX sent it, beside its replicas' logs
REPO_ROOT = Path(__file__).resolve().parents[2]


def replica_environments(job_spec: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(replica name, CLUSTER_SPEC and TF_CONFIG) for every replica, as Vertex AI sets them."""
    import portpicker

    pools = job_spec["worker_pool_specs"]
    hosts = [[f"localhost:{portpicker.pick_unused_port()}" for _ in range(int(p.get("replica_count", 1)))]
             for p in pools]
    cluster_spec = {f"workerpool{i}": h for i, h in enumerate(hosts) if h}
    tf_cluster = {TF_ROLES[i]: h for i, h in enumerate(hosts) if h and TF_ROLES[i] != "evaluator"}
    envs = []
    for i, pool_hosts in enumerate(hosts):
        for index in range(len(pool_hosts)):
            envs.append((f"workerpool{i}-{index}", {
                "CLUSTER_SPEC": json.dumps({"cluster": cluster_spec, "environment": "cloud",
                                            "task": {"type": f"workerpool{i}", "index": index}, "job": job_spec}),
                "TF_CONFIG": json.dumps({"cluster": tf_cluster, "environment": "cloud",
                                         "task": {"type": TF_ROLES[i], "index": index}, "job": job_spec}),
            }))
    return envs


def run_worker_pools(job_spec: Mapping[str, Any], log_dir: Path, timeout_s: float = 900) -> dict[str, int]:
    """Runs every replica at once (logs in `log_dir/<workerpoolI-J>.log`); returns exit codes.
    Raises, naming the replica and the end of its log, when one fails or time runs out."""
    from trainer.local_cluster import supervise

    processes = []
    environments = iter(replica_environments(job_spec))
    for pool in job_spec["worker_pool_specs"]:
        command = list(pool["container_spec"]["command"]) + list(pool["container_spec"].get("args", []))
        argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
        for _ in range(int(pool.get("replica_count", 1))):
            name, env = next(environments)
            # The image's ENV (kubeflow/Dockerfile): Keras 2, the project on the path.
            processes.append((name, argv, {**os.environ, "TF_USE_LEGACY_KERAS": "1",
                                           "PYTHONPATH": str(REPO_ROOT), **env}))
    return supervise(processes, Path(log_dir), timeout_s)


class LocalJobService:
    """What TFX's VertexJobClient calls of Vertex AI's job service, answered on this machine."""

    log_dir: Path = Path(tempfile.gettempdir()) / "local-vertex-jobs"
    timeout_s: float = 900
    jobs: list[SimpleNamespace] = []  # every CustomJob launched, with its replicas' exit codes

    def __init__(self, client_options=None, **_):
        self.client_options = client_options

    def create_custom_job(self, parent: str, custom_job: Mapping[str, Any]):
        from google.cloud.aiplatform_v1.types.job_state import JobState

        name = f"{parent}/customJobs/{len(self.jobs) + 1}"
        job = SimpleNamespace(name=name, custom_job=custom_job, state=JobState.JOB_STATE_FAILED, exit_codes={})
        self.jobs.append(job)
        log_dir = self.log_dir / str(len(self.jobs))
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / CUSTOM_JOB_FILE).write_text(json.dumps(custom_job, indent=1, default=str))
        job.exit_codes = run_worker_pools(custom_job["job_spec"], log_dir, self.timeout_s)
        job.state = JobState.JOB_STATE_SUCCEEDED
        print(f"local Vertex AI job {name}: replica exit codes {job.exit_codes}", file=sys.stderr, flush=True)
        return job

    def get_custom_job(self, name: str, retry=None):
        return next(job for job in self.jobs if job.name == name)


class _StandInOnImport(importlib.abc.MetaPathFinder):
    """Puts LocalJobService in place of the job service client when (and only when) the
    task imports Vertex AI's client: the other tasks start as fast as in the image, where
    only the Trainer's step loads it."""

    MODULE = "google.cloud.aiplatform.gapic"

    def find_spec(self, name, path, target=None):
        if name != self.MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.JobServiceClient = LocalJobService

        spec.loader.exec_module = exec_module
        return spec


def main(argv: Sequence[str]) -> None:
    if os.environ.get(LOG_DIR_ENV):
        LocalJobService.log_dir = Path(os.environ[LOG_DIR_ENV])
    sys.meta_path.insert(0, _StandInOnImport())
    module, *args = argv
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
