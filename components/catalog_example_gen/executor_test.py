"""CatalogExampleGen executor on a tiny generated catalog with bad rows and a bad photo."""
import json
import os

import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts

from components.artifacts import RejectedRecords
from components.catalog_example_gen.component import CatalogExampleGen
from components.catalog_example_gen.executor import Executor
from schema.catalog_spec import load_spec
from schema.demo_catalog import write_demo_catalog
from tests.fixtures.example_gen import run_catalog_example_gen


def _read(split_dir):
    files = tf.io.gfile.glob(os.path.join(split_dir, "*.gz"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def test_executor_writes_examples_and_rejects(tmp_path):
    catalog = write_demo_catalog(tmp_path / "catalog", rows=120)
    with open(catalog / "products.csv", "a", encoding="utf-8") as handle:
        handle.write("10001,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,duplicate id,\n")
        handle.write("900,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,escaping photo,../../etc/passwd\n")
        handle.write("901,Men,,,,Blue,Summer,2012,Casual,no category,\n")
    examples, rejected = run_catalog_example_gen(catalog, tmp_path)

    splits = artifact_utils.decode_split_names(examples.split_names)
    assert splits == ["train", "calibration", "eval"]
    by_split = {s: _read(artifact_utils.get_split_uri([examples], s)) for s in splits}
    total = sum(len(v) for v in by_split.values())
    counts = json.loads((tmp_path / "rejected" / "counts.json").read_text())
    assert counts == {"ingested": total, "rejected": 2, "image_warnings": 1}
    assert total == 121  # 120 generated + the row whose photo was refused
    assert len(by_split["train"]) > len(by_split["eval"]) > 0
    ex = by_split["train"][0].features.feature
    for key in ("id", "title", "description", "image", "has_image", "category_path", "level_1", "level_2",
                "level_3", "gender", "season", "usage", "baseColour"):
        assert key in ex, key
    with_photo = [e for e in by_split["train"] if e.features.feature["has_image"].int64_list.value[0] == 1]
    assert with_photo and with_photo[0].features.feature["image"].bytes_list.value[0][:2] == b"\xff\xd8"
    rejects = (tmp_path / "rejected" / "rejected.csv").read_text().splitlines()
    assert rejects[0] == "row,id,reason" and len(rejects) == 3
    assert any("duplicate id" in line for line in rejects) and any("no category" in line for line in rejects)
    warnings = (tmp_path / "rejected" / "warnings.csv").read_text()
    assert "escapes the catalog folder" in warnings
    assert examples.get_int_custom_property("rows_rejected") == 2


def test_a_catalog_with_no_usable_row_keeps_its_rejects_where_the_error_says(tmp_path):
    """TFX deletes a failed step's outputs, so the rejects are copied beside the pipeline
    root (`<root>/rejected/<run>/`) and the error names that copy."""
    import pytest

    from schema.catalog_reader import CatalogError

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"
    body = "".join(f"{i},Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,,\n" for i in range(5))
    (catalog / "products.csv").write_text(header + body)
    component = CatalogExampleGen(str(catalog), load_spec("fashion"))
    root = tmp_path / "root"
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "CatalogExampleGen" / "examples" / "7")
    rejected = RejectedRecords()
    rejected.uri = str(root / "CatalogExampleGen" / "rejected" / "7")
    exec_properties = dict(component.exec_properties)
    exec_properties["input_base"] = str(catalog)
    with pytest.raises(CatalogError) as raised:
        Executor().Do({}, {"examples": [examples], "rejected": [rejected]}, exec_properties)
    kept = root / "rejected" / "7" / "rejected.csv"
    assert f"all 5 rows were rejected; reasons are in {kept}" in str(raised.value)
    import shutil

    shutil.rmtree(root / "CatalogExampleGen")  # what TFX does to a failed step's outputs
    lines = kept.read_text().splitlines()
    assert lines[0] == "row,id,reason" and len(lines) == 6
    assert all("no title, description or image" in line for line in lines[1:])
    assert (kept.parent / "counts.json").exists()


def test_rejects_and_warnings_are_spreadsheet_safe(tmp_path):
    """rejected.csv and warnings.csv are opened in spreadsheets too: a merchant's id that
    begins with a formula trigger is written with a leading `'`."""
    import csv

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"
    body = ("1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Tee,\n"
            "=1+1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,,\n"
            "@cmd,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Tee,images/missing.jpg\n")
    (catalog / "products.csv").write_text(header + body)
    examples, rejected = run_catalog_example_gen(catalog, tmp_path)
    with open(tmp_path / "rejected" / "rejected.csv", newline="") as handle:
        assert [(r["row"], r["id"]) for r in csv.DictReader(handle)] == [("3", "'=1+1")]
    with open(tmp_path / "rejected" / "warnings.csv", newline="") as handle:
        assert [(r["row"], r["id"]) for r in csv.DictReader(handle)] == [("4", "'@cmd")]
