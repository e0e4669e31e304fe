"""A local pipeline's ML Metadata (the SQLite store under its pipeline root): opened here only.

`status`, `gc`, the run summary, the tests and the benchmarks all read a run's artifacts
and executions through `open_store`.
"""
from __future__ import annotations

import os

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
