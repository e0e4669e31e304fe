"""Every component's cache key holds a fingerprint of the project code it runs."""
import shutil

import pytest

from tests.conftest import shared_catalog

from components import code_version as cv
from schema.config import PipelineConfig

# Every node of the pipeline whose executor is the project's own or that runs project
# code through a named module (Transform, Trainer, Evaluator's metrics).
PROJECT_CODE_NODES = {"CatalogExampleGen", "StrictExampleValidator", "TaxonomyGen", "Embedder", "TaxonomyTransform",
                      "TaxonomyTrainer", "BagOfWordsTrainer", "BaselineSelector", "Evaluator", "ReviewReport",
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
    versions = {node_id: built[node_id].exec_properties[cv.CODE_VERSION_KEY] for node_id in stamped}
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in versions.values())
    # Components that run different code carry different versions; the two trainers run the
    # same run_fn and the same modules, so theirs agree.
    assert len({versions[n] for n in ("CatalogExampleGen", "TaxonomyGen", "Evaluator", "SafePusher")}) == 4
    assert versions["TaxonomyTrainer"] == versions["BagOfWordsTrainer"]
    # What each one covers is derived from its imports, not listed by hand.
    assert "evaluator.metrics" in cv.node_modules(built["Evaluator"])
    assert {"trainer.run", "components.taxonomy_aware.executor"} <= cv.node_modules(built["TaxonomyTrainer"])
    assert "trainer.preprocessing" in cv.node_modules(built["TaxonomyTransform"])
    trainer_files = {p.relative_to(cv.PROJECT_ROOT).as_posix()
                     for p in cv.module_sources(cv.node_modules(built["TaxonomyTrainer"]))}
    assert {"trainer/run.py", "trainer/model.py", "schema/taxonomy.py"} <= trainer_files


def _copy_project(to):
    for package in cv.PROJECT_PACKAGES:
        shutil.copytree(cv.PROJECT_ROOT / package, to / package, ignore=shutil.ignore_patterns("__pycache__"))
    return to


@pytest.mark.parametrize("edited, must_change, must_stay", [
    ("evaluator/metrics.py", {"Evaluator"}, {"CatalogExampleGen", "TaxonomyTrainer", "SafePusher"}),
    ("trainer/model.py", {"TaxonomyTrainer", "BagOfWordsTrainer"}, {"CatalogExampleGen", "TaxonomyGen", "Evaluator"}),
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
    copy = _copy_project(tmp_path / "project")
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


@pytest.mark.e2e
def test_tfx_reruns_only_the_component_whose_code_changed(tmp_path, demo_catalog):
    """The cache test, with TFX itself: the pipeline's first two project components
    (CatalogExampleGen and TaxonomyGen, built as create_pipeline builds them) run three
    times with LocalDagRunner on one pipeline root, their code versions stamped from a copy
    of the project. An edit to a module neither imports re-runs nothing; an edit to
    TaxonomyGen's executor re-runs TaxonomyGen and serves CatalogExampleGen from the cache."""
    from tfx import v1 as tfx

    from components.catalog_example_gen.component import CatalogExampleGen
    from components.run_status import list_runs
    from schema.mlmd import open_store
    from components.taxonomy_gen.component import TaxonomyGen

    catalog = shared_catalog("fashion") or demo_catalog
    copy = _copy_project(tmp_path / "project")
    config = PipelineConfig.local(str(catalog), "fashion", pipeline_root=str(tmp_path / "root"),
                                  serving_dir=str(tmp_path / "serving"), max_rows=300, preset="small")
    nodes = ("CatalogExampleGen", "TaxonomyGen")

    def run() -> dict:
        example_gen = CatalogExampleGen(config.catalog_dir, config.spec, max_rows=config.max_rows)
        taxonomy_gen = TaxonomyGen(examples=example_gen.outputs["examples"], max_depth=config.spec.max_depth,
                                   min_count=config.spec.min_products_per_category)
        built = [example_gen, taxonomy_gen]
        assert cv.stamp_code_versions(built, copy).keys() == set(nodes)  # as create_pipeline does, from the copy
        tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
            pipeline_name=config.pipeline_name, pipeline_root=config.pipeline_root, components=built,
            enable_cache=True,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                config.metadata_path)))
        return list_runs(open_store(config.metadata_path), config.pipeline_name)[-1]

    def edit(path: str) -> None:
        with open(copy / path, "a") as handle:
            handle.write("\n# an edit\n")

    first = run()
    assert sorted(first["executed"]) == sorted(nodes)
    edit("evaluator/metrics.py")
    unrelated = run()
    assert unrelated["executed"] == [] and sorted(unrelated["cached"]) == sorted(nodes)
    edit("components/taxonomy_gen/executor.py")
    edited = run()
    assert edited["executed"] == ["TaxonomyGen"] and edited["cached"] == ["CatalogExampleGen"]


def test_run_summary_names_the_pipelines_pusher_node(built):
    """The summary tells a push by an earlier run from this run's by the pusher node's id."""
    from components.run_summary import PUSHER_NODE
    from components.safe_pusher.component import SafePusher

    assert isinstance(built[PUSHER_NODE], SafePusher)
