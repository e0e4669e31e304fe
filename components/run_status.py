"""`pipeline.py status`: the runs of a local pipeline, read from its ML Metadata store.

For each pipeline run (an MLMD context of type `pipeline_run`): when it started, which
components executed and which were served from the cache (and any left running or failed,
e.g. by a killed process), whether its model was blessed, and what was pushed.
"""
from __future__ import annotations

import datetime
from typing import Any, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from schema.mlmd import open_store, prop

_STATES = {
    metadata_store_pb2.Execution.COMPLETE: "executed",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.NEW: "running",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.CANCELED: "failed",
}


def _when(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def list_runs(store: metadata_store.MetadataStore, pipeline_name: Optional[str] = None) -> list[dict[str, Any]]:
    """One dict per pipeline run, oldest first."""
    try:
        run_contexts = store.get_contexts_by_type("pipeline_run")
    except Exception:  # type not registered: no run yet
        return []
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    runs = []
    for run_context in sorted(run_contexts, key=lambda c: (c.create_time_since_epoch, c.id)):
        executions = store.get_executions_by_context(run_context.id)
        nodes: dict[str, list[str]] = {state: [] for state in ("executed", "cached", "running", "failed")}
        seconds: dict[str, float] = {}  # wall time of each executed node (MLMD create -> last update)
        pipelines = set()
        for execution in sorted(executions, key=lambda e: e.id):
            node = ""
            for context in store.get_contexts_by_execution(execution.id):
                if context.type == "node":
                    node = context.name
                elif context.type == "pipeline":
                    pipelines.add(context.name)
            node = node.split(".", 1)[1] if "." in node else node or execution.type
            state = _STATES.get(execution.last_known_state, "running")
            nodes[state].append(node)
            if state == "executed":
                seconds[node] = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        if pipeline_name and pipelines and pipeline_name not in pipelines:
            continue
        outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
        if executions:
            ids = [ev.artifact_id for ev in store.get_events_by_execution_ids([e.id for e in executions])
                   if ev.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
            for artifact in store.get_artifacts_by_id(sorted(set(ids))):
                outputs.setdefault(type_names.get(artifact.type_id, ""), []).append(artifact)
        blessings = outputs.get("ModelBlessing", [])
        pushes = outputs.get("PushedModel", [])
        pushed = [p for p in pushes if prop(p, "pushed", 0)]
        starts = [e.create_time_since_epoch for e in executions] or [run_context.create_time_since_epoch]
        runs.append({
            "run_id": run_context.name,
            "started": _when(min(starts)),
            **nodes,
            "seconds": seconds,
            "blessed": (bool(prop(blessings[-1], "blessed", 0)) if blessings else None),
            "pushed": bool(pushed),
            "pushed_version": str(prop(pushed[-1], "pushed_version", "")) if pushed else "",
            "pushed_to": prop(pushed[-1], "pushed_destination", "") if pushed else "",
        })
    return runs


def print_status(metadata_path: str, pipeline_name: Optional[str] = None) -> list[dict[str, Any]]:
    runs = list_runs(open_store(metadata_path), pipeline_name)
    print(f"{len(runs)} run(s) of {pipeline_name or 'every pipeline'} in {metadata_path}")
    for run in runs:
        blessed = {True: "yes", False: "no", None: "not evaluated"}[run["blessed"]]
        pushed = f"version {run['pushed_version']} -> {run['pushed_to']}" if run["pushed"] else "no"
        print(f"- run {run['run_id']}, started {run['started']}: {len(run['executed'])} executed, "
              f"{len(run['cached'])} cached" + "".join(f", {len(run[s])} {s}" for s in ("running", "failed")
                                                       if run[s])
              + f"; blessed: {blessed}; pushed: {pushed}")
        for state in ("executed", "cached", "running", "failed"):
            if run[state]:
                names = [f"{n} ({run['seconds'][n]:.0f}s)" if n in run["seconds"] else n for n in run[state]]
                print(f"    {state}: {', '.join(names)}")
    return runs
