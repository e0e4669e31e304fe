"""`categorize` never destroys data (issue #21): the output is refused when it is the catalog
(by any path), catalog-wide errors stop the job before the model loads and before any
write, the output appears only whole (temp file + rename), cells a spreadsheet would run
as formulas are neutralised, and a photo that could not be used is named in `reason`."""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from PIL import Image

import trainer.inference_client as categorize_module
from schema import features
from schema.catalog_reader import CatalogError
from schema.csv_cells import spreadsheet_safe
from trainer.inference_client import CategorizeError

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"


def _line(id_, title="Puma Men Blue Tee", image="") -> str:
    return f"{id_},Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,{title},{image}\n"


class _Fake:
    """Stands in for the serving model; records that it was loaded and can fail on a call."""

    loaded = 0
    path = b"Apparel > Topwear"
    fail_on_call: int | None = None
    calls = 0
    during_call = None  # callable run inside predict (sees the world while the job runs)

    def __init__(self, model_dir):
        type(self).loaded += 1
        self.model_dir = str(model_dir)

    def predict(self, serialized):
        type(self).calls += 1
        if self.during_call is not None:
            type(self).during_call()
        if self.fail_on_call == self.calls:
            raise KeyboardInterrupt
        n = len(serialized)
        path = np.array([self.path] * n, dtype=object)
        return {features.OUT_PATH: path, features.OUT_FULL_PATH: path,
                features.OUT_CONFIDENCE: np.full(n, 0.9), features.OUT_FULL_CONFIDENCE: np.full(n, 0.9),
                features.OUT_DEPTH: np.full(n, 2), "full_depth": np.full(n, 2)}


@pytest.fixture
def fake(monkeypatch):
    class Fake(_Fake):
        pass

    monkeypatch.setattr(categorize_module, "Categorizer", Fake)
    return Fake


def _catalog(tmp_path, body: str, header: str = HEADER):
    folder = tmp_path / "catalog"
    folder.mkdir(exist_ok=True)
    (folder / "products.csv").write_text(header + body, encoding="utf-8")
    return folder


def _run(catalog, output, **kw):
    return categorize_module.categorize(str(catalog), "fashion", str(output), model_dir="unused", **kw)


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---- output over the input --------------------------------------------------------------

@pytest.mark.parametrize("how", ["same path", "other spelling", "symlink", "hard link", "folder given"])
def test_output_that_is_the_catalog_is_refused_before_anything_is_written(tmp_path, fake, how):
    catalog = _catalog(tmp_path, _line("1") + _line("2"))
    csv_path = catalog / "products.csv"
    before = csv_path.read_bytes()
    if how == "same path":
        output = csv_path
    elif how == "other spelling":
        output = catalog / ".." / "catalog" / "." / "products.csv"
    elif how == "symlink":
        output = tmp_path / "out.csv"
        output.symlink_to(csv_path)
    elif how == "hard link":
        output = tmp_path / "out.csv"
        os.link(csv_path, output)
    else:
        output = csv_path
    source = catalog if how == "folder given" else csv_path
    with pytest.raises(CategorizeError, match="is the catalog file"):
        categorize_module.categorize(str(source), "fashion", str(output), model_dir="unused")
    assert csv_path.read_bytes() == before
    assert fake.loaded == 0
    assert sorted(p.name for p in catalog.iterdir()) == ["products.csv"]  # no temp file either


def test_an_output_that_is_a_symlink_loop_is_replaced_not_a_crash(tmp_path, fake):
    catalog = _catalog(tmp_path, _line("1"))
    output = tmp_path / "out.csv"
    output.symlink_to(output)
    _run(catalog, output)
    assert not output.is_symlink() and len(_rows(output)) == 1


def test_pipeline_cli_refuses_output_over_input_with_an_error_line(tmp_path, capsys):
    import pipeline

    catalog = _catalog(tmp_path, _line("1"))
    before = (catalog / "products.csv").read_bytes()
    code = pipeline.main(["categorize", "--catalog", str(catalog), "--spec", "fashion",
                          "--output", str(catalog / "products.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "is the catalog file" in err and "Traceback" not in err
    assert (catalog / "products.csv").read_bytes() == before


# ---- catalog-level errors before the model loads ---------------------------------------

@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("id,productDisplayName\n1,Tee\n", "header lacks column"),
])
def test_catalog_errors_stop_before_the_model_loads_and_keep_the_old_output(tmp_path, fake, content, message):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "products.csv").write_text(content)
    output = tmp_path / "out.csv"
    output.write_text("previous results\n")
    with pytest.raises(CatalogError, match=message):
        _run(catalog, output)
    assert fake.loaded == 0
    assert output.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog", "out.csv"]


def test_missing_catalog_file_is_a_clear_error_before_the_model_loads(tmp_path, fake):
    with pytest.raises(FileNotFoundError, match="not found"):
        _run(tmp_path / "nowhere.csv", tmp_path / "out.csv")
    assert fake.loaded == 0 and not (tmp_path / "out.csv").exists()


# ---- atomic output ----------------------------------------------------------------------

def test_output_appears_only_when_the_whole_input_is_done(tmp_path, fake):
    catalog = _catalog(tmp_path, "".join(_line(str(i)) for i in range(10)))
    output = tmp_path / "out.csv"
    output.write_text("previous results\n")
    seen = []
    fake.during_call = staticmethod(lambda: seen.append(output.read_text()))
    counts = _run(catalog, output, batch_size=3)
    assert seen == ["previous results\n"] * 4  # untouched while the job ran
    assert counts["rows"] == 10 and len(_rows(output)) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog", "out.csv"]


@pytest.mark.parametrize("previous", [True, False])
def test_an_interrupted_run_leaves_the_old_output_or_none_and_says_so(tmp_path, fake, capsys, previous):
    catalog = _catalog(tmp_path, "".join(_line(str(i)) for i in range(10)))
    output = tmp_path / "out.csv"
    if previous:
        output.write_text("previous results\n")
    fake.fail_on_call = 2
    with pytest.raises(KeyboardInterrupt):
        _run(catalog, output, batch_size=3)
    err = capsys.readouterr().err
    if previous:
        assert output.read_text() == "previous results\n"
        assert f"{output} was not changed" in err
    else:
        assert not output.exists() and f"{output} was not written" in err
    assert "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog"] + (["out.csv"] if previous else [])


def test_pipeline_cli_ends_an_interrupted_categorize_with_an_error_line(tmp_path, monkeypatch, capsys):
    import pipeline

    class Interrupting(_Fake):
        fail_on_call = 1

    monkeypatch.setattr(categorize_module, "Categorizer", Interrupting)
    catalog = _catalog(tmp_path, _line("1"))
    code = pipeline.main(["categorize", "--catalog", str(catalog), "--spec", "fashion", "--model", "x",
                          "--output", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code == 130 and "error: interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


# ---- spreadsheet-safe cells -------------------------------------------------------------

@pytest.mark.parametrize("cell, safe", [
    ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
    ("+1+2", "'+1+2"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("Apparel > Topwear", "Apparel > Topwear"), ("12345", "12345"), ("", ""), ("a=b", "a=b"),
])
def test_spreadsheet_safe_prefixes_formula_triggers(cell, safe):
    assert spreadsheet_safe(cell) == safe


def test_formula_ids_and_paths_are_neutralised_in_the_output(tmp_path, fake):
    catalog = _catalog(tmp_path, _line('"=HYPERLINK(""http://evil"",""x"")"') + _line("+7") + _line("@cmd")
                       + _line("-3") + _line("plain"))
    fake.path = b"=1+1 > Topwear"
    output = tmp_path / "out.csv"
    _run(catalog, output)
    rows = _rows(output)
    assert [r["id"] for r in rows] == ["'=HYPERLINK(\"http://evil\",\"x\")", "'+7", "'@cmd", "'-3", "plain"]
    assert {r["category_path"] for r in rows} == {"'=1+1 > Topwear"}
    assert all(r["confidence"] == "0.9000" for r in rows)


# ---- photo warnings ---------------------------------------------------------------------

def test_a_photo_that_cannot_be_used_is_named_in_reason_and_counted(tmp_path, fake, capsys):
    catalog = _catalog(tmp_path, _line("1", image="images/ok.jpg") + _line("2", image="images/missing.jpg")
                       + _line("3", image="../outside.jpg") + _line("4"))
    (catalog / "images").mkdir()
    Image.new("RGB", (16, 16), "red").save(catalog / "images" / "ok.jpg", "JPEG")
    output = tmp_path / "out.csv"
    counts = _run(catalog, output)
    rows = {r["id"]: r for r in _rows(output)}
    assert rows["1"]["reason"] == "" and rows["4"]["reason"] == ""
    assert rows["2"]["category_path"] == "Apparel > Topwear"  # still categorised from its title
    assert rows["2"]["reason"] == "photo not used: image file 'images/missing.jpg' not found"
    assert rows["3"]["reason"].startswith("photo not used: ") and "escapes" in rows["3"]["reason"]
    assert counts["photo_warnings"] == 2 and counts["categorized"] == 4
    assert "2 with a photo not used" in capsys.readouterr().out


def test_an_abstained_row_keeps_both_reasons(tmp_path, fake):
    catalog = _catalog(tmp_path, _line("1", image="images/missing.jpg"))
    fake.path = b""
    output = tmp_path / "out.csv"
    _run(catalog, output)
    (row,) = _rows(output)
    assert row["category_path"] == ""
    assert row["reason"] == ("confidence below the top-level threshold; "
                             "photo not used: image file 'images/missing.jpg' not found")


# ---- a model folder that is not a model -------------------------------------------------

def test_a_model_folder_that_is_not_a_model_is_an_error_line(tmp_path, capsys):
    import pipeline

    catalog = _catalog(tmp_path, _line("1"))
    not_a_model = tmp_path / "model"
    not_a_model.mkdir()
    (not_a_model / "saved_model.pb").write_bytes(b"not a protobuf")
    for model in (not_a_model, tmp_path / "missing"):
        code = pipeline.main(["categorize", "--catalog", str(catalog), "--spec", "fashion",
                              "--model", str(model), "--output", str(tmp_path / "out.csv")])
        err = capsys.readouterr().err
        assert code == 2 and f"error: cannot load the model {model}" in err and "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()
