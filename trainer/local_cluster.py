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
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

from absl import logging
from tfx.types import artifact_utils

from schema.config import PROJECT_ROOT

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


def supervise(processes: List[Tuple[str, List[str], Dict[str, str]]], log_dir: Path,
              timeout_s: float) -> Dict[str, int]:
    """Runs (name, argv, env) processes together from the project root, each in its own
    session with its output in `log_dir/<name>.log`, and waits for all of them.

    A replica that fails leaves the others waiting on it in a collective op forever, so
    the first failure (or the timeout) kills every process group that is still running
    and raises, naming the process and the end of its log. Returns the exit codes."""
    log_dir.mkdir(parents=True, exist_ok=True)
    running = []
    for name, argv, env in processes:
        log = open(log_dir / f"{name}.log", "w")
        running.append((name, subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True), log))
    deadline = time.time() + timeout_s
    failed_first = None
    try:
        while failed_first is None and any(p.poll() is None for _, p, _ in running):
            failed_first = next((n for n, p, _ in running if p.poll() not in (None, 0)), None)
            if time.time() > deadline:
                break
            time.sleep(0.5)
    finally:
        left_running = [n for n, p, _ in running if p.poll() is None]
        for _, proc, log in running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    codes = {name: proc.returncode for name, proc, _ in running}
    if failed_first is None and left_running:
        name, which = left_running[0], f"timed out after {timeout_s:.0f}s"
    else:
        name = failed_first or next((n for n in codes if codes[n] != 0), None)
        which = f"{name} exited with {codes[name]}" if name else ""
    if name is not None:
        tail = (log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"multi-worker training failed: {which}; logs in {log_dir}:\n{tail}")
    return codes


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
    processes = []
    for index, tf_config in enumerate(task_configs(ports)):
        # The project is importable as installed, or from the working directory (`-m`).
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_USE_LEGACY_KERAS="1")
        processes.append((f"worker_{index}", args, env))
    logging.info("starting %d training processes (logs in %s)", workers, log_dir)
    supervise(processes, log_dir, timeout_s)
    logging.info("all %d training processes finished", workers)
