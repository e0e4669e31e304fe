"""Vertex AI Training, played locally: a CustomJob's worker pools become processes.

`python -m tests.kfp_harness.local_vertex_jobs MODULE ARGS...` runs MODULE (a TFX
container entrypoint) with `google.cloud.aiplatform.gapic.JobServiceClient` replaced by
`LocalJobService`, so the Trainer step's executor (TFX's Vertex training extension)
submits its CustomJob here. Each replica of each pool runs the pool's container command
(`python -m tfx.scripts.run_executor ...`) with the variables Vertex AI sets on replicas:
CLUSTER_SPEC (pools `workerpool0`, `workerpool1`, ...) and, for TensorFlow, TF_CONFIG
(pool 0 is `chief`, pool 1 `worker`, pool 2 `ps`). The job succeeds when every replica
exits 0, as on Vertex AI, where a replica that fails fails the job.
"""
from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

TF_ROLES = ("chief", "worker", "ps", "evaluator")  # Vertex AI: pool index -> TF_CONFIG role


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def replica_environments(replica_counts: Sequence[int]) -> list[dict[str, str]]:
    """CLUSTER_SPEC and TF_CONFIG for every replica, as Vertex AI sets them."""
    ports = iter(_free_ports(sum(replica_counts)))
    pools = {f"workerpool{i}": [f"localhost:{next(ports)}" for _ in range(n)] for i, n in enumerate(replica_counts)}
    tf_cluster = {TF_ROLES[i]: pools[f"workerpool{i}"] for i in range(len(replica_counts)) if replica_counts[i]}
    envs = []
    for i, n in enumerate(replica_counts):
        for index in range(n):
            cluster_spec = {"cluster": pools, "environment": "cloud",
                            "task": {"type": f"workerpool{i}", "index": index}}
            tf_config = {"cluster": tf_cluster, "environment": "cloud",
                         "task": {"type": TF_ROLES[i], "index": index}}
            envs.append({"CLUSTER_SPEC": json.dumps(cluster_spec), "TF_CONFIG": json.dumps(tf_config)})
    return envs


def run_worker_pools(worker_pool_specs: Sequence[Mapping[str, Any]], timeout: float = 900) -> list[int]:
    """Runs every replica of the pools at once; returns their exit codes in pool order."""
    commands = []
    for pool in worker_pool_specs:
        command = list(pool["container_spec"]["command"]) + list(pool["container_spec"].get("args", []))
        if command[0] == "python":
            command[0] = sys.executable
        commands += [command] * int(pool.get("replica_count", 1))
    envs = replica_environments([int(p.get("replica_count", 1)) for p in worker_pool_specs])
    procs = [subprocess.Popen(cmd, env={**os.environ, **env}) for cmd, env in zip(commands, envs)]
    try:
        return [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


class LocalJobService:
    """Just what TFX's VertexJobClient calls: create_custom_job and get_custom_job."""

    jobs: dict[str, Any] = {}

    def __init__(self, client_options=None, **_):
        self.client_options = client_options

    def create_custom_job(self, parent: str, custom_job: Mapping[str, Any]):
        from google.cloud.aiplatform_v1.types.job_state import JobState

        name = f"{parent}/customJobs/{len(self.jobs) + 1}"
        codes = run_worker_pools(custom_job["job_spec"]["worker_pool_specs"])
        print(f"local Vertex AI job {name}: replica exit codes {codes}", file=sys.stderr, flush=True)
        state = JobState.JOB_STATE_SUCCEEDED if all(c == 0 for c in codes) else JobState.JOB_STATE_FAILED
        self.jobs[name] = SimpleNamespace(name=name, state=state, exit_codes=codes)
        return self.jobs[name]

    def get_custom_job(self, name: str, retry=None):
        return self.jobs[name]


def main(argv: Sequence[str]) -> None:
    from google.cloud.aiplatform import gapic

    gapic.JobServiceClient = LocalJobService
    module, *args = argv
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
