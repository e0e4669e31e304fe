"""Shared test set-up: environment and catalog samples.

Tests read the real catalogs from ../shared/datasets when present and otherwise use the
generated demo catalog, so the suite runs on any clone.
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The project itself is imported as installed (`make install`: editable) or, under
# `python -m pytest` from the root, from the working directory.
ROOT = Path(__file__).resolve().parent.parent

import pytest  # noqa: E402

from schema.config import DEFAULT_DATASETS  # noqa: E402


@pytest.fixture(scope="session")
def demo_catalog(tmp_path_factory) -> Path:
    from schema.demo_catalog import write_demo_catalog

    return write_demo_catalog(tmp_path_factory.mktemp("demo"), rows=1200)


def shared_catalog(name: str) -> Path | None:
    path = DEFAULT_DATASETS / name
    return path if (path / "products.csv").exists() else None
