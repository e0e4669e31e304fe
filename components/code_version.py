"""A fingerprint of the user code a component runs, for TFX's cache key.

Transform and Trainer name their user functions by import path
(`trainer.preprocessing.preprocessing_fn`, `trainer.run.run_fn`), so their cache key holds
the path and the configuration but not the code behind it: after a change to the model
or to smart thresholding, a re-run on an unchanged catalog reused the old model. (TFX's
`module_file` option packages and fingerprints a single file; these functions span
packages.) The fingerprint goes into the component's `custom_config`, which is part of
the key, so a code change re-runs exactly the components whose code changed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODE_VERSION_CONFIG = "code_version"


def code_version(*paths: str) -> str:
    """SHA-256 over the Python sources under `paths` (files or packages, relative to the
    project root), their relative names included, so a renamed file counts as a change."""
    digest = hashlib.sha256()
    for relative in paths:
        target = PROJECT_ROOT / relative
        if not target.exists():
            raise FileNotFoundError(f"code_version: {target} does not exist")
        files = [target] if target.is_file() else sorted(target.rglob("*.py"))
        for source in files:
            digest.update(source.relative_to(PROJECT_ROOT).as_posix().encode())
            digest.update(b"\0")
            digest.update(source.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


# What each component's user code imports from this project.
TRANSFORM_CODE = ("trainer/preprocessing.py", "trainer/presets.py", "schema", "components/taxonomy_aware")
TRAINER_CODE = ("trainer", "schema", "components/taxonomy_aware")
