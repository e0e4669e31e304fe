"""Plays Vertex AI Training on this machine, for tests.

The Trainer step's executor (kubeflow.trainer_executor.VertexTaxonomyTrainerExecutor) runs
for real and builds its CustomJob through TFX's Vertex AI extension
(`VertexJobClient.create_training_job`: every worker pool gets the command
`python -m tfx.scripts.run_executor --executor_class_path ... --inputs ... --outputs ...
--exec-properties ...`). Only the two calls that talk to Google Cloud are replaced: creating
the API client, and launching and polling the job (`runner._launch_cloud_training`). Here
that starts one process per replica of every pool, with the environment Vertex AI sets on
a replica (TF_CONFIG with chief/worker and its `environment` and `job` fields,
CLUSTER_SPEC with workerpool0/1), on free localhost ports, and waits for all of them.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

POOL_ROLES = ("chief", "worker", "ps", "evaluator")  # Vertex AI's workerpool0..3


def training_config(workers: int, image: str = "registry.example/pipeline:git-sha") -> dict[str, Any]:
    """Trainer custom_config entries that TFX's Vertex AI extension reads: a CustomJob with
    a chief pool of 1 replica and a worker pool of `workers - 1`, as the cluster settings
    write them."""
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

    pool = {"machine_spec": {"machine_type": "n1-standard-4"}, "container_spec": {"image_uri": image}}
    pools = [{**pool, "replica_count": 1}] + ([{**pool, "replica_count": workers - 1}] if workers > 1 else [])
    return {constants.ENABLE_VERTEX_KEY: True, constants.VERTEX_REGION_KEY: "europe-west4",
            vertex_executor.TRAINING_ARGS_KEY: {"project": "test-project", "job_spec": {"worker_pool_specs": pools}}}


class FakeVertex:
    def __init__(self, log_dir: Path, timeout_s: float):
        self.log_dir, self.timeout_s = Path(log_dir), timeout_s
        self.jobs: list[dict[str, Any]] = []  # the CustomJobs launched
        self.exit_codes: dict[str, int] = {}  # "workerpool<i>-<index>" -> exit code

    def install(self, monkeypatch) -> None:
        from tfx.extensions.google_cloud_ai_platform import runner, training_clients

        monkeypatch.setattr(training_clients.VertexJobClient, "create_client", lambda self: None)
        monkeypatch.setattr(runner, "_launch_cloud_training", self.launch)

    def log(self, pool: int, index: int) -> str:
        return (self.log_dir / f"workerpool{pool}-{index}.log").read_text(errors="replace")

    def launch(self, project: str, training_job: dict, enable_vertex: bool = False,
               vertex_region: str | None = None) -> None:
        """Runs every replica of `training_job` (a Vertex AI CustomJob) and waits; raises
        when one fails, as TFX does for a failed job."""
        import portpicker

        from trainer.local_cluster import supervise

        if not enable_vertex:
            raise RuntimeError("the job was not sent to Vertex AI (ai_platform_enable_vertex is off)")
        self.jobs.append(training_job)
        job_spec = training_job["job_spec"]
        pools = job_spec["worker_pool_specs"]
        hosts = [[f"localhost:{portpicker.pick_unused_port()}" for _ in range(pool.get("replica_count", 1))]
                 for pool in pools]
        cluster_spec = {f"workerpool{i}": h for i, h in enumerate(hosts) if h}
        tf_cluster = {POOL_ROLES[i]: h for i, h in enumerate(hosts) if h and POOL_ROLES[i] != "evaluator"}
        processes = []
        for i, pool in enumerate(pools):
            command = list(pool["container_spec"]["command"])
            argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
            for index in range(len(hosts[i])):
                env = {
                    **os.environ,
                    "TF_USE_LEGACY_KERAS": "1",  # the image's ENV (kubeflow/Dockerfile)
                    "PYTHONPATH": str(ROOT),
                    "TF_CONFIG": json.dumps({"cluster": tf_cluster, "task": {"type": POOL_ROLES[i], "index": index},
                                             "environment": "cloud", "job": job_spec}),
                    "CLUSTER_SPEC": json.dumps({"cluster": cluster_spec, "environment": "cloud",
                                                "task": {"type": f"workerpool{i}", "index": index},
                                                "job": job_spec}),
                }
                processes.append((f"workerpool{i}-{index}", argv, env))
        self.exit_codes.update(supervise(processes, self.log_dir, self.timeout_s))
