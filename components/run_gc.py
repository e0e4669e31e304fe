"""`pipeline.py gc`: deletes old pipeline artifacts, keeping what the next run needs.

Read from the pipeline's ML Metadata. Kept: every artifact the latest run and the latest
finished run used or produced (their executions' input and output events, cached steps
included, so running the same pipeline again is still served from the cache), and the
latest blessed model with its blessing (what the next run's Resolver takes as the
baseline). Every other live artifact under the pipeline root is removed from disk and
marked DELETED in ML Metadata, which TFX's cache and input resolution then skip. The
served models are not artifacts here: the pusher's retention keeps those
(`schema/serving_layout.py`).
"""
from __future__ import annotations

import os
import shutil
from typing import Any

from ml_metadata.proto import metadata_store_pb2

from schema.mlmd import live_artifacts, open_store, prop

_FINISHED = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _run_artifacts(store, run_context_id: int) -> tuple[set[int], bool]:
    """(ids of the artifacts a run's executions used or produced, whether it finished)."""
    executions = store.get_executions_by_context(run_context_id)
    if not executions:
        return set(), False
    events = store.get_events_by_execution_ids([e.id for e in executions])
    finished = all(e.last_known_state in _FINISHED for e in executions)
    return {ev.artifact_id for ev in events}, finished


def _latest_blessed(store) -> set[int]:
    """The newest blessing with blessed=1 and the model it blesses."""
    live = [b for b in live_artifacts(store, "ModelBlessing") if prop(b, "blessed", 0) == 1]
    if not live:
        return set()
    newest = max(live, key=lambda b: b.id)
    return {newest.id, int(prop(newest, "current_model_id", -1))}


def collect_garbage(pipeline_root: str, dry_run: bool = False) -> dict[str, Any]:
    """Deletes the live artifacts under `pipeline_root` that the next run does not need;
    -> {"artifacts": how many, "bytes": their size on disk, "kept": how many stay}."""
    root = os.path.realpath(pipeline_root)
    store = open_store(os.path.join(pipeline_root, "metadata.sqlite"), readonly=dry_run)
    try:
        runs = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: (c.create_time_since_epoch, c.id))
    except Exception:  # noqa: BLE001 - no run recorded
        runs = []
    keep: set[int] = set()
    if runs:
        latest, finished = _run_artifacts(store, runs[-1].id)
        keep |= latest
        if not finished:  # a killed run: keep the last finished one too, for its cache
            for run in reversed(runs[:-1]):
                ids, done = _run_artifacts(store, run.id)
                if done:
                    keep |= ids
                    break
    keep |= _latest_blessed(store)
    doomed = []
    for artifact in store.get_artifacts():
        if artifact.id in keep or artifact.state != metadata_store_pb2.Artifact.LIVE or not runs:
            continue
        uri = os.path.realpath(artifact.uri) if artifact.uri else ""
        if not uri.startswith(root + os.sep):
            continue  # only what the pipeline wrote under its root
        doomed.append((artifact, uri))
    freed = 0
    for artifact, uri in doomed:
        if os.path.exists(uri):
            freed += _size(uri)
            if not dry_run:
                if os.path.isdir(uri) and not os.path.islink(uri):
                    shutil.rmtree(uri, ignore_errors=True)
                else:
                    os.remove(uri)
        if not dry_run:
            artifact.state = metadata_store_pb2.Artifact.DELETED
            store.put_artifacts([artifact])
    return {"artifacts": len(doomed), "bytes": freed, "kept": len(keep)}


def print_gc(pipeline_root: str, dry_run: bool = False) -> dict[str, Any]:
    report = collect_garbage(pipeline_root, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    print(f"{verb} {report['artifacts']} artifact(s), {report['bytes'] / 1e6:.1f} MB, under {pipeline_root}; "
          f"kept the {report['kept']} the latest run and the latest blessed model use")
    return report
