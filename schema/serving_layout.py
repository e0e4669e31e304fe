"""The serving folder's layout, shared by the pusher (writer) and `categorize` (reader).

    <serving_dir>/<spec>/<version>/             a pushed SavedModel; <version> is a number
    <serving_dir>/<spec>/<version>/_COMPLETE    written last: the version's file manifest
    <model>/assets.extra/                       beside the SavedModel: taxonomy.json,
                                                thresholds.json, model_info.json, word_mapper.npz
    <serving_dir>/<spec>/.incoming-<version>/   a push being staged (renamed into place)
    <serving_dir>/<spec>/                       flock-ed by a local push while it runs

A version counts only when it is complete: its `_COMPLETE` marker is there and every file
the marker lists is there with its size. A folder copied in by hand without its variables,
or a push cut off half-way on an object store, is therefore never served: readers take the
newest complete version and name the broken ones. Version numbers only grow: a new push
takes a number above every existing one, so a stray high-numbered folder cannot shadow it.

The readers (`version_dirs`, `why_incomplete`, `newest_complete`) also take a `gs://...`
folder (through `tf.io.gfile`, returning path strings): on Kubeflow Pipelines the
BaselineSelector finds the incumbent in a serving dir on an object store.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Union

INCOMING_PREFIX = ".incoming-"
COMPLETE_MARKER = "_COMPLETE"
SAVED_MODEL_PB = "saved_model.pb"
ASSETS_EXTRA = "assets.extra"  # the files a model carries beside its SavedModel (trainer/export.py)
# The files in ASSETS_EXTRA: written by trainer/export.py, read by the pusher, `categorize`,
# the review report and the benchmarks.
ASSETS_TAXONOMY = "taxonomy.json"
ASSETS_THRESHOLDS = "thresholds.json"
ASSETS_INFO = "model_info.json"
DEFAULT_KEEP_VERSIONS = 3

PathLike = Union[str, os.PathLike]


def _is_remote(path: PathLike) -> bool:
    return "://" in str(path)


def _remote_version_dirs(base: str) -> list[str]:
    import tensorflow as tf

    base = base.rstrip("/")
    if not tf.io.gfile.isdir(base):
        return []
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(base)]
    return sorted((f"{base}/{name}" for name in names if name.isdigit()), key=lambda p: int(p.rsplit("/", 1)[1]))


def _read_text(path: str) -> str:
    """A file's text; FileNotFoundError when it is not there (local or object store)."""
    if not _is_remote(path):
        return Path(path).read_text(encoding="utf-8")
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(path)
    with tf.io.gfile.GFile(path, "r") as handle:
        return handle.read()


def read_asset(model_dir: PathLike, name: str) -> Optional[Any]:
    """The JSON file `name` of a model's ASSETS_EXTRA (local or object store); None when the
    model has none (an older model, or a folder that is not a model)."""
    try:
        return json.loads(_read_text(os.path.join(str(model_dir), ASSETS_EXTRA, name)))
    except FileNotFoundError:
        return None


def _size(path: str) -> int:
    """A file's size in bytes; OSError when it is not a file there."""
    if not _is_remote(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        return os.stat(path).st_size
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(path)
    return tf.io.gfile.stat(path).length


def _join(folder: PathLike, name: str) -> str:
    return f"{str(folder).rstrip('/')}/{name}" if _is_remote(folder) else os.path.join(folder, name)


def version_dirs(base: PathLike) -> list[Path]:
    """Numeric version folders under `base`, oldest (lowest number) first."""
    if _is_remote(base):
        return _remote_version_dirs(str(base))
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if p.name.isdigit() and p.is_dir()), key=lambda p: int(p.name))


def manifest(folder: PathLike) -> dict[str, int]:
    """{relative path: size} of every file under `folder` (the marker excluded)."""
    folder = Path(folder)
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != COMPLETE_MARKER:
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    return files


def marker_text(folder: PathLike) -> str:
    """What a push writes as `_COMPLETE` once everything else of `folder` is in place."""
    return json.dumps({"files": manifest(folder)}, sort_keys=True, indent=0)


def why_incomplete(folder: PathLike) -> Optional[str]:
    """None when `folder` is a complete version, else the reason it is not."""
    try:
        text = _read_text(_join(folder, COMPLETE_MARKER))
    except FileNotFoundError:
        return f"no {COMPLETE_MARKER} marker (a push that did not finish, or a copy made by hand)"
    except (OSError, UnicodeDecodeError) as err:
        return f"unreadable {COMPLETE_MARKER} marker: {err}"
    try:
        _size(_join(folder, SAVED_MODEL_PB))
    except OSError:
        return f"no {SAVED_MODEL_PB}"
    if not text.strip():
        return None  # an object-store push writes an empty marker after every file
    try:
        files = json.loads(text)["files"]
    except (ValueError, KeyError, TypeError):
        return f"malformed {COMPLETE_MARKER} marker"
    for name, size in files.items():
        try:
            actual = _size(_join(folder, name))
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes, the marker says {size}"
    return None


def newest_complete(base: PathLike) -> tuple[Optional[Path], list[tuple[Path, str]]]:
    """(the newest complete version or None, [(broken version newer than it, why)])."""
    broken = []
    for folder in reversed(version_dirs(base)):
        reason = why_incomplete(folder)
        if reason is None:
            return folder, broken
        broken.append((folder, reason))
    return None, broken


def next_version(base: PathLike, now: Optional[float] = None) -> int:
    """A version number above every existing version and staging folder (the clock's
    seconds when that is higher, so versions still read as push times)."""
    base = Path(base)
    taken = [int(p.name) for p in version_dirs(base)]
    if base.is_dir():
        taken += [int(p.name[len(INCOMING_PREFIX):]) for p in base.iterdir()
                  if p.name.startswith(INCOMING_PREFIX) and p.name[len(INCOMING_PREFIX):].isdigit()]
    clock = int(time.time() if now is None else now)
    return max([clock] + [v + 1 for v in taken])


@contextlib.contextmanager
def push_lock(base: PathLike) -> Iterator[None]:
    """Serialises local pushes to `base`. The kernel drops the lock when its process dies,
    so any `.incoming-*` found while holding it belongs to a push that was killed."""
    import fcntl

    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base, os.O_RDONLY)  # the folder itself is the lock: no lock file to list
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_stale_incoming(base: PathLike) -> list[str]:
    """Removes staging folders left by killed pushes; call with `push_lock` held."""
    base = Path(base)
    removed = []
    if base.is_dir():
        for path in base.iterdir():
            if path.name.startswith(INCOMING_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return sorted(removed)


def prune_versions(base: PathLike, keep: int = DEFAULT_KEEP_VERSIONS) -> list[str]:
    """Deletes complete versions older than the newest `keep` complete ones; never the
    served one (the newest complete), never a broken one (left for a person to look at).
    Returns the deleted version names."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the served version), got {keep}")
    complete = [p for p in version_dirs(base) if why_incomplete(p) is None]
    served, _ = newest_complete(base)
    removed = []
    for folder in complete[:-keep]:
        if served is not None and folder == served:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    return removed
