"""The serving layout: where pushed model versions live and which of them count.

`serving/<spec>/<version>/` holds one pushed SavedModel per numeric version, written by
SafePusher and read by `categorize` and, on open-source Kubeflow Pipelines, by the
BaselineSelector (the newest pushed version is the incumbent there). Paths go through
`tf.io.gfile`, so a `gs://` serving dir works the same as a local one.
"""
from __future__ import annotations

import os
import posixpath
from typing import Optional

SAVED_MODEL_PB = "saved_model.pb"
VARIABLES_INDEX = posixpath.join("variables", "variables.index")
COMPLETE_MARKER = "_COMPLETE"
INCOMING_PREFIX = ".incoming-"


def _join(base: str, *parts: str) -> str:
    return posixpath.join(base.rstrip("/"), *parts) if "://" in base else os.path.join(base, *parts)


def is_complete(version_dir: str) -> bool:
    """A version counts once its graph and its variables are both in place."""
    import tensorflow as tf

    return tf.io.gfile.exists(_join(version_dir, SAVED_MODEL_PB)) and tf.io.gfile.exists(
        _join(version_dir, VARIABLES_INDEX)
    )


def versions(push_dir: str) -> list[int]:
    """The numeric version names under `push_dir`, oldest first (staging folders excluded)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(push_dir):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(push_dir))
    return sorted(int(name) for name in names if name.isdigit())


def newest_complete_version(push_dir: str) -> Optional[str]:
    """The path of the newest complete version under `push_dir`, or None when none is."""
    for version in reversed(versions(push_dir)):
        path = _join(push_dir, str(version))
        if is_complete(path):
            return path
    return None
