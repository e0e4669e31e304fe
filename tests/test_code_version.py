"""Every component's cache key holds a fingerprint of the project code it runs."""
import shutil

import pytest

from components import code_version as cv
from schema.config import PipelineConfig

# Every node of the pipeline whose executor is the project's own or that runs project
# code through a named module (Transform, Trainer, Evaluator's metrics).
PROJECT_CODE_NODES = {"CatalogExampleGen", "StrictExampleValidator", "TaxonomyGen", "Embedder", "TaxonomyTransform",
                      "TaxonomyTrainer", "BaselineTrainer", "BaselineSelector", "Evaluator", "ReviewReport",
                      "SafePusher"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pipeline_definition

    tmp = tmp_path_factory.mktemp("code_version")
    config = PipelineConfig.local(str(tmp / "catalog"), "fashion", pipeline_root=str(tmp / "root"),
                                  serving_dir=str(tmp / "serving"), preset="small")
    return {c.id: c for c in pipeline_definition.create_pipeline(config).components}


def test_every_project_component_carries_its_code_version(built):
    stamped = {node_id for node_id, node in built.items() if cv.CODE_VERSION_KEY in node.exec_properties}
    assert stamped == PROJECT_CODE_NODES
    for node_id in stamped:
        assert built[node_id].exec_properties[cv.CODE_VERSION_KEY] == cv.code_version(cv.node_modules(built[node_id]))
    # What each one covers is derived from its imports, not listed by hand.
    assert "evaluator.metrics" in cv.node_modules(built["Evaluator"])
    assert {"trainer.run", "components.taxonomy_aware.executor"} <= cv.node_modules(built["TaxonomyTrainer"])
    assert "trainer.preprocessing" in cv.node_modules(built["TaxonomyTransform"])
    trainer_files = {p.relative_to(cv.PROJECT_ROOT).as_posix()
                     for p in cv.module_sources(cv.node_modules(built["TaxonomyTrainer"]))}
    assert {"trainer/run.py", "trainer/model.py", "schema/taxonomy.py"} <= trainer_files


@pytest.mark.parametrize("edited, must_change, must_stay", [
    ("evaluator/metrics.py", {"Evaluator"}, {"CatalogExampleGen", "TaxonomyTrainer", "SafePusher"}),
    ("trainer/model.py", {"TaxonomyTrainer", "BaselineTrainer"}, {"CatalogExampleGen", "TaxonomyGen", "Evaluator"}),
    ("components/safe_pusher/executor.py", {"SafePusher"}, {"Evaluator", "TaxonomyTrainer", "ReviewReport"}),
    ("components/safe_pusher/push.py", {"SafePusher"}, {"Evaluator", "TaxonomyTrainer", "ReviewReport"}),
    ("evaluator/templates/report.html.j2", {"ReviewReport"}, {"Evaluator", "SafePusher", "TaxonomyTrainer"}),
    ("schema/catalog_reader.py", {"CatalogExampleGen"}, {"Evaluator", "TaxonomyGen"}),
    # The encoders live in schema/encoders/; the Embedder's key follows them there, down to
    # the checkpoint reader that the image network imports inside a function.
    ("schema/encoders/torch_checkpoint.py", {"Embedder"}, {"CatalogExampleGen", "TaxonomyGen", "Evaluator"}),
    ("schema/taxonomy.py", {"TaxonomyTransform", "TaxonomyTrainer"}, {"CatalogExampleGen", "Embedder"}),
])
def test_an_edit_reruns_exactly_the_components_that_import_it(built, tmp_path, edited, must_change, must_stay):
    """Edit one module in a copy of the project: the components whose code imports it get a
    new cache key, the others keep theirs (their cached outputs stay valid)."""
    copy = tmp_path / "project"
    for package in cv.PROJECT_PACKAGES:
        shutil.copytree(cv.PROJECT_ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {n: cv.code_version(cv.node_modules(built[n]), copy) for n in PROJECT_CODE_NODES}
    with open(copy / edited, "a") as handle:
        handle.write("\n# an edit\n")
    after = {n: cv.code_version(cv.node_modules(built[n]), copy) for n in PROJECT_CODE_NODES}
    changed = {n for n in PROJECT_CODE_NODES if before[n] != after[n]}
    assert must_change <= changed
    assert not (must_stay & changed), f"{edited} re-runs {sorted(must_stay & changed)}"


def test_relative_imports_and_renames_count(tmp_path, monkeypatch):
    monkeypatch.setattr(cv, "PROJECT_PACKAGES", ("pkg",))
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from .sub import b\nimport json\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("def f():\n    from pkg import c\n")
    (tmp_path / "pkg" / "c.py").write_text("C = 1\n")
    (tmp_path / "pkg" / "unused.py").write_text("U = 1\n")
    files = {p.relative_to(tmp_path).as_posix() for p in cv.module_sources(["pkg.a"], tmp_path)}
    assert files == {"pkg/__init__.py", "pkg/a.py", "pkg/sub/__init__.py", "pkg/sub/b.py", "pkg/c.py"}
    first = cv.code_version(["pkg.a"], tmp_path)
    (tmp_path / "pkg" / "unused.py").write_text("U = 2\n")
    assert cv.code_version(["pkg.a"], tmp_path) == first  # not imported: no re-run
    (tmp_path / "pkg" / "c.py").write_text("C = 2\n")  # imported lazily, inside a function
    assert cv.code_version(["pkg.a"], tmp_path) != first
