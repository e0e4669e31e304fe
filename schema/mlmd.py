"""A local pipeline's ML Metadata (the SQLite store under its pipeline root): opened and read here.

`status`, `gc`, the run summary, the tests and the benchmarks open the store with
`open_store`, find a run's artifacts with `live_artifacts` / `newest`, and read their
custom properties with `prop`.
"""
from __future__ import annotations

import os
from typing import Any, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2


def open_store(metadata_path: str, readonly: bool = True) -> metadata_store.MetadataStore:
    """The local pipeline's ML Metadata; read-only unless `readonly=False` (`gc` marks the
    artifacts it deletes)."""
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no ML Metadata at {metadata_path}: run `python pipeline.py run` first")
    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = metadata_path
    conn.sqlite.connection_mode = (metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if readonly
                                   else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE)
    return metadata_store.MetadataStore(conn)


def live_artifacts(store: metadata_store.MetadataStore, type_name: str) -> list[metadata_store_pb2.Artifact]:
    """The live (not deleted by `gc`) artifacts of a type; [] when the type is not
    registered yet (no run has produced one)."""
    try:
        artifacts = store.get_artifacts_by_type(type_name)
    except Exception:  # noqa: BLE001 - type not registered yet
        return []
    return [a for a in artifacts if a.state == metadata_store_pb2.Artifact.LIVE]


def newest(store: metadata_store.MetadataStore, type_name: str,
           having: Optional[str] = None, producer: Optional[str] = None) -> Optional[metadata_store_pb2.Artifact]:
    """The newest live artifact of a type (optionally: one carrying custom property `having`,
    or written by the pipeline node `producer`, whose id names the artifact's folder)."""
    live = [a for a in live_artifacts(store, type_name)
            if (having is None or having in a.custom_properties)
            and (producer is None or f"/{producer}/" in a.uri)]
    return max(live, key=lambda a: a.id) if live else None


def prop(artifact: Optional[metadata_store_pb2.Artifact], name: str, default: Any = None) -> Any:
    """Custom property `name` of an MLMD artifact proto, whatever its kind; `default` when
    the artifact is None or lacks it."""
    if artifact is None or name not in artifact.custom_properties:
        return default
    value = artifact.custom_properties[name]
    which = value.WhichOneof("value")
    return getattr(value, which) if which else default
