"""The catalog's fingerprint for the cache key: the CSV and every photo beside it.

TFX's file-based ExampleGen fingerprints only the files its split pattern matches (here
`products.csv`), so replacing a photo left the cached examples in place. A catalog is its
folder: the fingerprint covers every file under it (relative name, size, modification
time, TFX's own convention for input files), read through `tf.io.gfile`, so it works on
`gs://` too.

Three places use it, one per orchestrator: the local driver (LocalDagRunner), the
pre-cache-check driver that Vertex AI Pipelines runs before the ExampleGen task
(`components/catalog_example_gen/driver.py`), and `submit` for open-source KFP, which
runs no pre-cache check and gets the fingerprint as a pipeline parameter instead.
"""
from __future__ import annotations

import hashlib
import posixpath
from typing import Iterable, Iterator

from tfx.components.example_gen import input_processor

CATALOG_FINGERPRINT_KEY = "catalog_fingerprint"


def _files(input_base: str) -> Iterator[tuple[str, int, int]]:
    import tensorflow as tf

    base = input_base.rstrip("/")
    for directory, _, names in tf.io.gfile.walk(base):
        for name in names:
            path = posixpath.join(directory.rstrip("/"), name)
            stat = tf.io.gfile.stat(path)
            yield posixpath.relpath(path, base), int(stat.length), int(stat.mtime_nsec)


def fingerprint_files(entries: Iterable[tuple[str, int, int]]) -> str:
    """`catalog files:N,bytes:B,sha256:H` over (relative name, size, mtime) entries."""
    digest = hashlib.sha256()
    count = total = 0
    for name, size, mtime in sorted(entries):
        digest.update(f"{name}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
        count += 1
        total += size
    return f"catalog files:{count},bytes:{total},sha256:{digest.hexdigest()}"


def catalog_fingerprint(input_base: str) -> str:
    """The fingerprint of the catalog folder `input_base` (CSV and photos)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(input_base):
        raise FileNotFoundError(f"catalog folder {input_base} does not exist")
    return fingerprint_files(_files(input_base))


def with_catalog_fingerprint(input_fingerprint: str, input_base: str) -> str:
    """TFX's fingerprint of the split files, followed by the whole catalog folder's."""
    return f"{input_fingerprint}\n{catalog_fingerprint(input_base)}"


class CatalogInputProcessor(input_processor.FileBasedInputProcessor):
    """TFX's file-based processor whose fingerprint also covers the photos."""

    def __init__(self, input_base_uri: str, splits, range_config=None):
        super().__init__(input_base_uri, splits, range_config)
        self._catalog_dir = input_base_uri

    def get_input_fingerprint(self, span: int, version=None) -> str:
        return with_catalog_fingerprint(super().get_input_fingerprint(span, version), self._catalog_dir)
