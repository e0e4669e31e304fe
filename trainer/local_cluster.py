"""Data-parallel training on one machine through the code path a cluster uses.

`pipeline.py run --train-workers N` starts N processes of TFX's own executor entry point
(`tfx.scripts.run_executor`, what a TFJob pod or a Vertex AI replica runs), each with a
TF_CONFIG naming a chief and N-1 workers on localhost ports. run_fn then trains with
MultiWorkerMirroredStrategy exactly as on a cluster, and only the chief exports.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

from absl import logging
from tfx.types import artifact_utils

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_WORKERS_CONFIG = "local_train_workers"


def cluster_spec(ports: List[int]) -> dict:
    hosts = [f"localhost:{p}" for p in ports]
    return {"chief": hosts[:1], "worker": hosts[1:]}


def task_configs(ports: List[int]) -> List[dict]:
    cluster = cluster_spec(ports)
    tasks = [{"type": "chief", "index": 0}] + [{"type": "worker", "index": i} for i in range(len(ports) - 1)]
    return [{"cluster": cluster, "task": task} for task in tasks]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def run_workers(
    executor_class_path: str,
    input_dict: Dict[str, List[Any]],
    output_dict: Dict[str, List[Any]],
    exec_properties: Dict[str, Any],
    workers: int,
    timeout_s: float = 3600,
) -> None:
    """Runs the executor in `workers` processes and waits; raises naming a failed worker."""
    import portpicker

    ports = [portpicker.pick_unused_port() for _ in range(workers)]
    args = [
        sys.executable, "-m", "tfx.scripts.run_executor",
        "--executor_class_path", executor_class_path,
        "--inputs-base64", _b64(artifact_utils.jsonify_artifact_dict(input_dict)),
        "--outputs-base64", _b64(artifact_utils.jsonify_artifact_dict(output_dict)),
        "--exec-properties-base64", _b64(json.dumps(exec_properties)),
    ]
    log_dir = Path(tempfile.mkdtemp(prefix="train_workers_"))
    procs = []
    for index, tf_config in enumerate(task_configs(ports)):
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_USE_LEGACY_KERAS="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
        log = open(log_dir / f"worker_{index}.log", "w")
        procs.append((subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True), log))
    logging.info("started %d training processes (logs in %s)", workers, log_dir)
    deadline = time.time() + timeout_s
    failed = None
    while any(p.poll() is None for p, _ in procs) and failed is None:
        failed = next((i for i, (p, _) in enumerate(procs) if p.poll() not in (None, 0)), None)
        if time.time() > deadline:
            failed = -1
        time.sleep(1)
    if failed is None:
        failed = next((i for i, (p, _) in enumerate(procs) if p.returncode != 0), None)
    for proc, log in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    if failed is not None:
        which = "timed out" if failed == -1 else f"worker {failed} exited with {procs[failed][0].returncode}"
        tail = (log_dir / f"worker_{max(failed, 0)}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"local multi-worker training failed: {which}; log {log_dir}:\n{tail}")
    logging.info("all %d training processes finished", workers)
