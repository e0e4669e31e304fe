"""Property tests (issue #21): whatever the catalog folder holds and whatever path text a row
names, reading a photo fails only as a ValueError with a reason, and `categorize` writes
one row per input row, each categorised from its title, with the photo problem in `reason`.

Hypothesis builds folders of file-system oddities: symlink loops and chains, links out of
the folder, dangling links, names past the file system's limit, unreadable files, folders
and FIFOs where a photo should be, device files, files used as folders."""
from __future__ import annotations

import csv
import io
import os
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import trainer.inference_client as categorize_module
from schema import features
from schema.catalog_reader import load_image_bytes
from schema.catalog_spec import load_spec

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"
KINDS = ("photo", "loop", "chain_loop", "link_out", "link_in", "dangling", "long_name", "unreadable",
         "folder", "fifo", "device", "empty", "not_an_image", "file_as_folder")


def _make(folder: Path, outside: Path, i: int, kind: str) -> str:
    """Creates one oddity in `folder`; -> the image path a row names for it."""
    name = f"p{i}.jpg"
    path = folder / name
    if kind == "photo":
        Image.new("RGB", (8, 8), (i % 255, 0, 0)).save(path, "JPEG")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "chain_loop":
        other = folder / f"q{i}.jpg"
        path.symlink_to(other)
        other.symlink_to(path)
    elif kind == "link_out":
        path.symlink_to(outside)
    elif kind == "link_in":
        Image.new("RGB", (8, 8)).save(folder / f"real{i}.png", "PNG")
        path.symlink_to(folder / f"real{i}.png")
    elif kind == "dangling":
        path.symlink_to(folder / f"gone{i}.jpg")
    elif kind == "long_name":
        return "x" * 300 + name
    elif kind == "unreadable":
        Image.new("RGB", (8, 8)).save(path, "JPEG")
        path.chmod(0)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_an_image":
        path.write_bytes(b"hello, not a picture\n" * 10)
    elif kind == "file_as_folder":
        path.write_bytes(b"x")
        return f"{name}/inner.jpg"
    return name


# Path text a merchant could write, beside the names of the files made.
path_text = st.one_of(
    st.text(alphabet=string.ascii_letters + "./\\-_ ~é漢", max_size=40),
    st.lists(st.sampled_from(["..", ".", "images", "p0.jpg", "", "x" * 260]), max_size=6).map("/".join),
    st.sampled_from(["/etc/passwd", "../../etc/passwd", "./p0.jpg", "p0.jpg/", "//p0.jpg", "p0.jpg\x00x"]),
)


class _Fake:
    def __init__(self, model_dir):
        self.model_dir = str(model_dir)

    def predict(self, serialized):
        n = len(serialized)
        path = np.array([b"Apparel > Topwear"] * n, dtype=object)
        return {features.OUT_PATH: path, features.OUT_FULL_PATH: path,
                features.OUT_CONFIDENCE: np.full(n, 0.9), features.OUT_FULL_CONFIDENCE: np.full(n, 0.9),
                features.OUT_DEPTH: np.full(n, 2), "full_depth": np.full(n, 2)}


def _quote(text: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([text])
    return out.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=10), texts=st.lists(path_text, max_size=5))
def test_no_file_system_oddity_costs_a_row_or_the_job(monkeypatch, kinds, texts):
    monkeypatch.setattr(categorize_module, "Categorizer", _Fake)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        catalog = root / "catalog"
        catalog.mkdir()
        Image.new("RGB", (8, 8)).save(root / "outside.jpg", "JPEG")
        paths = [_make(catalog, root / "outside.jpg", i, kind) for i, kind in enumerate(kinds)] + texts
        try:
            # Each path alone: a usable photo or a ValueError with a reason, nothing else.
            for path in paths:
                try:
                    assert load_image_bytes(catalog, path)
                except ValueError as err:
                    assert str(err)
            lines = [f"{i},Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Tee {i},{_quote(p)}\n"
                     for i, p in enumerate(paths)]
            (catalog / "products.csv").write_text(HEADER + "".join(lines), encoding="utf-8")
            counts = categorize_module.categorize(str(catalog), "fashion", str(root / "out.csv"), model_dir="m",
                                                  batch_size=4)
            with open(root / "out.csv", newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            assert [r["id"] for r in rows] == [str(i) for i in range(len(paths))]
            assert all(r["category_path"] == "Apparel > Topwear" for r in rows)
            warned = [r for r in rows if r["reason"]]
            assert all(r["reason"].startswith("photo not used: ") for r in warned)
            assert counts["photo_warnings"] == len(warned)
            assert counts["rows"] == counts["categorized"] == len(paths)
        finally:
            for path in catalog.rglob("*"):
                if path.exists() and not path.is_symlink():
                    path.chmod(0o700)


@pytest.mark.parametrize("kind", KINDS)
def test_each_oddity_alone_gives_its_reason(tmp_path, kind):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.jpg", "JPEG")
    path = _make(catalog, tmp_path / "outside.jpg", 0, kind)
    if kind in ("photo", "link_in", "link_out") or (kind == "unreadable" and os.geteuid() == 0):
        assert load_image_bytes(catalog, path)[:2] in (b"\xff\xd8", b"\x89P")  # root reads mode-0 files
        return
    expected = {"loop": "symlink loop", "chain_loop": "symlink loop", "dangling": "not found",
                "long_name": "too long", "unreadable": "Permission denied", "folder": "is a folder",
                "fifo": "not a regular file", "device": "not a regular file", "empty": "is empty",
                "not_an_image": "cannot be decoded", "file_as_folder": "not found"}[kind]
    with pytest.raises(ValueError, match=expected):
        load_image_bytes(catalog, path)
