"""Runs a compiled PipelineJob the way Vertex AI Pipelines or open-source KFP 2.x would.

For each task, once its upstream tasks are done (every ready task at once, as the
backends run them), the harness builds the ExecutorInput the backend
sends and runs the task's container command (TFX's own entrypoints) as a process:

- `vertex` shape: legacy `inputs.parameters`, artifact names of Vertex ML Metadata
  (`projects/.../artifacts/N`), outputs under `<root>/<project number>/<job>/<task>_<id>/`,
  `executor_output.json` beside them; the ExampleGen's pre-cache-check driver runs first
  and its output updates the task's parameters (and so its cache key); resolver tasks are
  answered by evaluating their artifact query against the artifacts recorded so far; the
  Trainer's Vertex AI CustomJob runs locally (`local_vertex_jobs`).
- `kfp` shape: spec-2.1 `inputs.parameterValues` (constants and pipeline parameters from
  `runtimeConfig.parameterValues`), outputs under `<root>/<pipeline>/<run>/<task>/`, the
  output metadata file at a fixed path outside the root, no pre-cache check and no
  resolvers (a spec with one is refused, as that backend refuses it).

Caching follows the backends: a task whose key (input artifact names, parameter values,
output types, image, command and arguments) matches an earlier successful execution is
not run, and its recorded outputs are reused. Artifacts and executions live in memory in
a `Store`, which plays ML Metadata across runs.
"""
from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any, Optional

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
VERTEX, KFP = "vertex", "kfp"
PROJECT_NUMBER = "123456789"


@dataclasses.dataclass
class Store:
    """ML Metadata, as far as the harness needs it: artifacts in creation order, cache."""

    artifacts: list[dict] = dataclasses.field(default_factory=list)
    cache: dict[str, dict] = dataclasses.field(default_factory=dict)  # cache key -> outputs
    next_id: int = 1
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def new_name(self, shape: str) -> str:
        with self.lock:
            number, self.next_id = self.next_id, self.next_id + 1
        if shape == VERTEX:
            return f"projects/{PROJECT_NUMBER}/locations/us-central1/metadataStores/default/artifacts/{number}"
        return str(number)

    def record(self, artifact: dict) -> None:
        with self.lock:
            self.artifacts = [a for a in self.artifacts if a["name"] != artifact["name"]] + [artifact]


@dataclasses.dataclass
class TaskResult:
    name: str
    status: str  # "ran", "cached" or "resolved"
    outputs: dict[str, list[dict]]
    cache_key: Optional[str] = None


def _title(artifact_type: dict) -> str:
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return yaml.safe_load(artifact_type["instanceSchema"]).get("title", "tfx.Artifact")


class Launcher:
    def __init__(self, job: dict, shape: str, store: Store, work_dir: Path,
                 parameter_values: Optional[dict[str, Any]] = None, env: Optional[dict[str, str]] = None):
        self.job, self.shape, self.store, self.work_dir = job, shape, store, Path(work_dir)
        self.spec = job["pipelineSpec"]
        self.executors = self.spec["deploymentSpec"]["executors"]
        self.parameter_values = dict(parameter_values or {})
        self.env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_USE_LEGACY_KERAS": "1", **(env or {})}
        if shape == KFP:
            resolvers = [n for n, e in self.executors.items() if "resolver" in e]
            if resolvers:
                raise ValueError(f"KFP backend: resolver executors not implemented ({', '.join(resolvers)})")

    # -- order ----------------------------------------------------------------------------
    def upstream(self) -> dict[str, set[str]]:
        """Each task's upstream tasks: those it names, and the producers of its inputs."""
        tasks = self.spec["root"]["dag"]["tasks"]
        ups = {}
        for name, task in tasks.items():
            ups[name] = set(task.get("dependentTasks", []))
            for value in task.get("inputs", {}).get("artifacts", {}).values():
                if "taskOutputArtifact" in value:
                    ups[name].add(value["taskOutputArtifact"]["producerTask"])
        return ups

    # -- one run --------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, TaskResult]:
        """Runs every task once its upstream tasks are done, each ready task at once, as
        both backends do (two Trainers side by side, the pusher beside the report)."""
        ups = self.upstream()
        results: dict[str, TaskResult] = {}
        pending = set(ups)
        running: dict[concurrent.futures.Future, str] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(ups) or 1) as pool:
            try:
                while pending or running:
                    for name in sorted(n for n in pending if ups[n] <= results.keys()):
                        pending.discard(name)
                        running[pool.submit(self._run_task, name, run_id, dict(results))] = name
                    if not running:
                        raise ValueError(f"cycle among tasks {sorted(pending)}")
                    done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                    for future in done:
                        results[running.pop(future)] = future.result()  # a failed task ends the run
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # tasks already started finish
        return results

    def _component(self, task: dict) -> dict:
        return self.spec["components"][task["componentRef"]["name"]]

    def _input_artifacts(self, task: dict, results: dict[str, TaskResult]) -> dict[str, dict]:
        inputs = {}
        for key, value in task.get("inputs", {}).get("artifacts", {}).items():
            source = value["taskOutputArtifact"]
            artifacts = results[source["producerTask"]].outputs.get(source["outputArtifactKey"], [])
            inputs[key] = {"artifacts": copy.deepcopy(artifacts)}
        return inputs

    def _parameters(self, task: dict) -> dict[str, Any]:
        """Parameters in the backend's shape: legacy `parameters` or `parameterValues`."""
        out = {}
        for key, value in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in value:
                out[key] = self.parameter_values[value["componentInputParameter"]]
            elif self.shape == VERTEX:
                out[key] = value["runtimeValue"]["constantValue"]
            else:
                out[key] = value["runtimeValue"]["constant"]
        return out

    def _task_dir(self, name: str, run_id: str) -> Path:
        root = self.job["runtimeConfig"]["gcsOutputDirectory"].rstrip("/")
        if self.shape == VERTEX:
            task_id = zlib.crc32(f"{run_id}/{name}".encode()) % 10**8  # Vertex AI: <task>_<task id>
            return Path(root) / PROJECT_NUMBER / run_id / f"{name}_{task_id}"
        return Path(root) / self.spec["pipelineInfo"]["name"] / run_id / name

    def _run_task(self, name: str, run_id: str, results: dict[str, TaskResult]) -> TaskResult:
        task = self.spec["root"]["dag"]["tasks"][name]
        component = self._component(task)
        executor = self.executors[component["executorLabel"]]
        inputs = self._input_artifacts(task, results)
        if "resolver" in executor:
            return TaskResult(name, "resolved", self._resolve(executor["resolver"], inputs))

        task_dir = self._task_dir(name, run_id)
        outputs = {}
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            outputs[key] = {"artifacts": [{
                "name": self.store.new_name(self.shape),
                "type": dict(definition["artifactType"]),
                "uri": str(task_dir / key),
                "metadata": {},
            }]}
        if self.shape == VERTEX:
            output_file = task_dir / "executor_output.json"
        else:  # the KFP launcher's fixed path in the container, outside the pipeline root
            output_file = self.work_dir / "kfp_outputs" / run_id / name / "output_metadata.json"
        parameters = self._parameters(task)
        executor_input = {
            "inputs": {"artifacts": inputs,
                       ("parameters" if self.shape == VERTEX else "parameterValues"): parameters},
            "outputs": {"artifacts": outputs, "outputFile": str(output_file)},
        }
        container = executor["container"]
        if self.shape == VERTEX and "preCacheCheck" in container.get("lifecycle", {}):
            hook = container["lifecycle"]["preCacheCheck"]
            self._exec(hook["command"] + hook.get("args", []), executor_input, name + " pre-cache check")
            update = json.loads(output_file.read_text())
            parameters.update({k: {"stringValue": v} if isinstance(v, str) else {"intValue": str(int(v))}
                               for k, v in update.get("parameterValues", {}).items()})
            for key, artifact_list in update.get("artifacts", {}).items():
                for artifact, updated in zip(outputs[key]["artifacts"], artifact_list["artifacts"]):
                    artifact["metadata"].update(updated.get("metadata", {}))

        key = self._cache_key(inputs, parameters, component, container)
        cached = self.store.cache.get(key)
        if cached is not None and task.get("cachingOptions", {}).get("enableCache", False):
            return TaskResult(name, "cached", copy.deepcopy(cached), key)

        self._exec(container["command"] + container.get("args", []), executor_input, name)
        produced = json.loads(output_file.read_text()).get("artifacts", {})
        final = {}
        for out_key, planned in outputs.items():
            artifacts = planned["artifacts"]
            for artifact, written in zip(artifacts, produced.get(out_key, {}).get("artifacts", [])):
                artifact["metadata"] = written.get("metadata", artifact["metadata"])
                artifact["uri"] = written.get("uri", artifact["uri"])
            for artifact in artifacts:
                self.store.record(artifact)
            final[out_key] = artifacts
        self.store.cache[key] = copy.deepcopy(final)
        return TaskResult(name, "ran", final, key)

    def _exec(self, command: list[str], executor_input: dict, label: str) -> None:
        payload = json.dumps(executor_input)
        argv = [payload if arg == "{{$}}" else arg for arg in command]
        if argv[:2] == ["python", "-m"]:
            # On Vertex AI a Trainer step may launch a CustomJob: answered locally.
            shim = ["tests.kfp_harness.local_vertex_jobs"] if self.shape == VERTEX else []
            argv = [sys.executable, "-m", *shim, *argv[2:]]
        log = self.work_dir / "logs" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as handle:
            code = subprocess.run(argv, env=self.env, cwd=self.work_dir, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=1200).returncode
        if code != 0:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"{label} exited {code}; log {log}:\n{tail}")

    @staticmethod
    def _cache_key(inputs: dict, parameters: dict, component: dict, container: dict) -> str:
        key = {
            "inputArtifactNames": {k: [a["name"] for a in v["artifacts"]] for k, v in sorted(inputs.items())},
            "inputParameterValues": parameters,
            "outputArtifactsSpec": {k: _title(v["artifactType"])
                                    for k, v in component.get("outputDefinitions", {}).get("artifacts", {}).items()},
            "containerSpec": {"image": container["image"], "cmdArgs": container["command"] + container.get("args", [])},
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    # -- resolvers (Vertex AI answers their artifact queries from its ML Metadata) --------
    def _resolve(self, resolver: dict, inputs: dict[str, dict]) -> dict[str, list[dict]]:
        def fill(match: re.Match) -> str:
            artifacts = inputs.get(match.group(1), {}).get("artifacts", [])
            return str(artifacts[0]["metadata"].get(match.group(2), "")) if artifacts else "\0no input"

        out = {}
        for key, query in resolver["outputArtifactQueries"].items():
            text = re.sub(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}", fill,
                          query["filter"])
            matches = [a for a in self.store.artifacts if _matches(a, text)]
            out[key] = [copy.deepcopy(matches[-1])] if matches else []
        return out


def _matches(artifact: dict, query: str) -> bool:
    for clause in query.split(" AND "):
        field, _, value = clause.partition("=")
        value = value.strip('"')
        if field == "schema_title":
            if _title(artifact["type"]) != value:
                return False
        elif field == "state":
            continue  # every recorded artifact is LIVE
        elif field == "name":
            if artifact["name"] != value:
                return False
        elif field.startswith("metadata.") and field.endswith(".number_value"):
            found = artifact["metadata"].get(field[len("metadata."):-len(".number_value")])
            if found is None or float(found) != float(value):
                return False
        else:
            raise ValueError(f"resolver query clause not understood: {clause}")
    return True
