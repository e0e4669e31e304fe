import json

import pytest

from components import code_version as cv
from schema.config import PipelineConfig


def test_fingerprint_changes_with_the_code_and_only_with_it(tmp_path, monkeypatch):
    monkeypatch.setattr(cv, "PROJECT_ROOT", tmp_path)
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "sub" / "b.py").write_text("B = 2\n")
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    first = cv.code_version("pkg")
    assert cv.code_version("pkg") == first
    (tmp_path / "pkg" / "notes.txt").write_text("still not code")
    assert cv.code_version("pkg") == first
    (tmp_path / "pkg" / "sub" / "b.py").write_text("B = 3\n")
    changed = cv.code_version("pkg")
    assert changed != first
    (tmp_path / "pkg" / "sub" / "b.py").rename(tmp_path / "pkg" / "sub" / "c.py")
    assert cv.code_version("pkg") != changed  # a renamed module is a change too
    with pytest.raises(FileNotFoundError, match="missing"):
        cv.code_version("missing")


def test_transform_and_trainer_cache_keys_hold_their_code_version(tmp_path):
    """The fingerprint is in the exec properties TFX keys its cache on."""
    import pipeline

    config = PipelineConfig.local(str(tmp_path / "catalog"), "fashion", pipeline_root=str(tmp_path / "root"),
                                  serving_dir=str(tmp_path / "serving"), preset="small")
    by_id = {c.id: c for c in pipeline.create_pipeline(config).components}
    expected = {"TaxonomyTransform": cv.code_version(*cv.TRANSFORM_CODE),
                "TaxonomyTrainer": cv.code_version(*cv.TRAINER_CODE),
                "BaselineTrainer": cv.code_version(*cv.TRAINER_CODE)}
    for component_id, version in expected.items():
        custom = json.loads(by_id[component_id].exec_properties["custom_config"])
        assert custom[cv.CODE_VERSION_CONFIG] == version, component_id
