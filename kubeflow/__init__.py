"""Kubeflow Pipelines / Vertex AI: settings, compile, submit and cluster training.

This package is also the import path that the compiled pipeline records for the project's
custom artifact types: KFP needs a schema title of the form `namespace.TypeName` that is
also importable in the container, so `kubeflow.RejectedRecords` and
`kubeflow.CategoryTaxonomy` resolve here (lazily, so importing the package stays cheap).
"""
from __future__ import annotations

from typing import Any

# Custom artifact types re-exported under a KFP-valid schema title (kubeflow.<TypeName>).
ARTIFACT_TYPES = ("RejectedRecords", "CategoryTaxonomy", "ReviewReportArtifact", "WordMapperArtifact")


def __getattr__(name: str) -> Any:
    if name in ARTIFACT_TYPES:
        from components import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
