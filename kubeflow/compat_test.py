"""kubeflow/compat.py: the compiler shim works on the tested TFX and refuses another one."""
import pytest
import yaml

from kubeflow import compat


def test_refuses_an_untested_tfx():
    compat.check_tfx_version()  # the installed one is tested
    with pytest.raises(RuntimeError, match="update the shim"):
        compat.check_tfx_version("1.99.0")


def test_titles_project_types_and_restores_the_compiler():
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.types import standard_artifacts

    from components.artifacts import CategoryTaxonomy

    original = compiler_utils.get_artifact_schema
    with compat.kubeflow_artifact_titles(lambda t: "kubeflow.CategoryTaxonomy" if t is CategoryTaxonomy else None):
        schema = yaml.safe_load(compiler_utils.get_artifact_schema(CategoryTaxonomy))
        assert schema["title"] == "kubeflow.CategoryTaxonomy" and schema["type"] == "object"
        # First-party types keep TFX's own schema.
        assert yaml.safe_load(compiler_utils.get_artifact_schema(standard_artifacts.Model))["title"] == "tfx.Model"
    assert compiler_utils.get_artifact_schema is original
