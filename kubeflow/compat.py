"""The one place where the Kubeflow compiler leans on TFX internals, with version checks.

TFX's KFP v2 compiler takes an artifact type's KFP schema title from its TYPE_NAME, which
must then read `namespace.TypeName` ("Invalid custom artifact type name:
RejectedRecords" otherwise). Renaming the types would rename them in the ML Metadata of
local runs, so while compiling, `compiler_utils.get_artifact_schema` answers with an
importable title for the project's own types (`kubeflow.RejectedRecords`, ...). The
function is module-level in TFX 1.16; `kubeflow_artifact_titles` refuses to run on a TFX
whose compiler does not have it, rather than compile a spec with wrong titles.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Callable, Iterator, Optional

TESTED_TFX = ("1.16.",)  # the TFX releases this shim was checked against

_KFP_TITLE = re.compile(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$")


def check_tfx_version(version: Optional[str] = None) -> None:
    import tfx

    version = version or tfx.__version__
    if not version.startswith(TESTED_TFX):
        raise RuntimeError(
            f"kubeflow/compat.py patches TFX's KFP v2 compiler as of TFX {', '.join(TESTED_TFX)}x; "
            f"TFX {version} is installed: check compiler_utils.get_artifact_schema and update the shim"
        )


@contextlib.contextmanager
def kubeflow_artifact_titles(title_for: Callable[[type], Optional[str]]) -> Iterator[None]:
    """While compiling, gives artifact types for which `title_for` answers that KFP title."""
    import yaml
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    check_tfx_version()
    original = getattr(compiler_utils, "get_artifact_schema", None)
    if original is None:
        raise RuntimeError("TFX's compiler_utils has no get_artifact_schema: update kubeflow/compat.py")
    generic = Path(compiler_utils.__file__).parent / "artifact_types" / "Artifact.yaml"

    def get_artifact_schema(artifact_type):
        title = None if _KFP_TITLE.fullmatch(artifact_type.TYPE_NAME) else title_for(artifact_type)
        if title is None:
            return original(artifact_type)
        # What TFX itself writes for a custom type: the generic Artifact schema, retitled.
        schema = yaml.safe_load(generic.read_text())
        schema["title"] = title
        return yaml.dump(schema, sort_keys=False)

    compiler_utils.get_artifact_schema = get_artifact_schema
    try:
        yield
    finally:
        compiler_utils.get_artifact_schema = original
