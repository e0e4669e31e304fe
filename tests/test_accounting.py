"""Accounting identity (issue #7): one catalog seeded with every kind of bad input, read by the
ingest (the CatalogExampleGen executor) and by `categorize` (with a stand-in model). Rows in
= rows written + rows rejected, and every reject carries its row number and reason."""
from __future__ import annotations

import csv
import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.types import artifact_utils

from schema import features
from tests.fixtures.example_gen import run_catalog_example_gen

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"
GOOD_LEVELS = ("Apparel", "Topwear", "Tshirts")


def _line(id_, title="Puma Men Blue Tee", image="", levels=GOOD_LEVELS) -> bytes:
    return f"{id_},Men,{levels[0]},{levels[1]},{levels[2]},Blue,Summer,2012,Casual,{title},{image}\n".encode("utf-8", "surrogateescape")


def _bomb_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", 30_000, 30_000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


# (case, line bytes, ingest outcome, categorize outcome, reason fragment when not "kept")
# outcomes: kept, warned (kept, photo dropped), rejected, blank (not a record)
def _cases(tmp_path):
    images = tmp_path / "catalog" / "images"
    images.mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(images / "rgb.jpg", "JPEG")
    Image.new("L", (32, 32)).save(images / "gray.jpg", "JPEG")
    Image.new("CMYK", (32, 32)).save(images / "cmyk.jpg", "JPEG")
    Image.new("RGBA", (32, 32)).save(images / "photo.png", "PNG")
    Image.new("P", (32, 32)).save(images / "photo.gif", "GIF")
    Image.new("RGB", (32, 32)).save(images / "photo.webp", "WEBP")
    noisy = io.BytesIO()
    Image.effect_noise((200, 200), 64).convert("RGB").save(noisy, "JPEG", quality=95)
    (images / "truncated.jpg").write_bytes(noisy.getvalue()[: len(noisy.getvalue()) // 2])
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20)
    (images / "bomb.png").write_bytes(_bomb_png())
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.jpg", "JPEG")
    (images / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    (images / "loop.jpg").symlink_to(images / "loop.jpg")
    (images / "folder.jpg").mkdir()
    os.mkfifo(images / "fifo.jpg")
    (images / "device.jpg").symlink_to("/dev/zero")
    return [
        ("rgb jpeg", _line("1", image="images/rgb.jpg"), "kept", "kept", ""),
        ("grayscale jpeg", _line("2", image="images/gray.jpg"), "kept", "kept", ""),
        ("cmyk jpeg", _line("3", image="images/cmyk.jpg"), "kept", "kept", ""),
        ("png", _line("4", image="images/photo.png"), "kept", "kept", ""),
        ("gif", _line("5", image="images/photo.gif"), "kept", "kept", ""),
        ("webp", _line("6", image="images/photo.webp"), "kept", "kept", ""),
        ("missing photo", _line("7", image="images/missing.jpg"), "warned", "kept", "not found"),
        ("truncated jpeg", _line("8", image="images/truncated.jpg"), "warned", "kept", "cannot be decoded"),
        ("corrupt jpeg, no title", _line("9", title="", image="images/corrupt.jpg"), "rejected", "rejected",
         "no title and unusable image"),
        ("decompression bomb", _line("10", image="images/bomb.png"), "warned", "kept", "pixel limit"),
        ("escaping path", _line("11", image="../outside.jpg"), "warned", "kept", "escapes"),
        ("absolute path", _line("12", image=str(tmp_path / "outside.jpg")), "warned", "kept", "absolute"),
        ("symlink in the folder, pointing out", _line("13", image="images/link.jpg"), "kept", "kept", ""),
        ("symlink loop", _line("24", image="images/loop.jpg"), "warned", "kept", "symlink loop"),
        ("300-character name", _line("25", image="images/" + "x" * 300 + ".jpg"), "warned", "kept", "too long"),
        ("folder", _line("26", image="images/folder.jpg"), "warned", "kept", "is a folder"),
        ("FIFO", _line("27", image="images/fifo.jpg"), "warned", "kept", "not a regular file"),
        ("device", _line("28", image="images/device.jpg"), "warned", "kept", "not a regular file"),
        ("path through a file", _line("29", image="images/rgb.jpg/x.jpg"), "warned", "kept", "not found"),
        ("unbalanced quote", _line("14", title='"Tee with an open quote'), "rejected", "rejected",
         "unbalanced quotes"),
        ("wrong column count", b"15,Men,Apparel\n", "rejected", "rejected", "has 3 columns"),
        ("non-UTF-8", _line("16", title="Caf\udce9"), "rejected", "rejected", "non-UTF-8"),
        ("blank line", b"\n", "blank", "blank", ""),
        ("empty id", _line(""), "rejected", "rejected", "empty id"),
        ("duplicate id", _line("1", title="Second Tee"), "rejected", "rejected", "duplicate id"),
        ("no title, no photo", _line("19", title=""), "rejected", "rejected", "no title, description or image"),
        ("100 KB title", _line("20", title="Tee " * 25_000), "kept", "kept", ""),
        ("scripts and emoji", _line("21", title="Tee\x07 قميص חולצה 男士T恤 👨‍👩‍👧"), "kept", "kept", ""),
        ("empty middle level", _line("22", levels=("Apparel", "", "Tshirts")), "rejected", "kept", "empty level 2"),
        ("no category", _line("23", levels=("", "", "")), "rejected", "kept", "no category"),
        *[(f"plain {i}", _line(str(100 + i), title=f"Plain Tee {i}"), "kept", "kept", "") for i in range(12)],
    ]


@pytest.fixture
def seeded(tmp_path):
    cases = _cases(tmp_path)
    catalog = tmp_path / "catalog"
    data = b"".join(line for _, line, *_ in cases)
    (catalog / "products.csv").write_bytes(HEADER.encode() + data)
    rows = {}  # physical line -> case
    line_number = 2
    for case in cases:
        rows[line_number] = case
        line_number += case[1].count(b"\n")
    return catalog, rows


def _read_examples(split_dir):
    files = tf.io.gfile.glob(os.path.join(split_dir, "*.gz"))
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_ingest_accounts_for_every_row(seeded, tmp_path):
    catalog, rows = seeded
    examples, rejected = run_catalog_example_gen(catalog, tmp_path)

    records = {n: c for n, c in rows.items() if c[2] != "blank"}
    written = [e for s in artifact_utils.decode_split_names(examples.split_names)
               for e in _read_examples(artifact_utils.get_split_uri([examples], s))]
    rejects = _csv_rows(tmp_path / "rejected" / "rejected.csv")
    warnings = _csv_rows(tmp_path / "rejected" / "warnings.csv")
    counts = json.loads((tmp_path / "rejected" / "counts.json").read_text())

    # The identity: rows in = rows written + rows rejected, in counts.json, in MLMD and on disk.
    assert len(records) == counts["ingested"] + counts["rejected"]
    assert counts == {"ingested": len(written), "rejected": len(rejects), "image_warnings": len(warnings)}
    assert examples.get_int_custom_property("rows_ingested") == len(written)
    assert examples.get_int_custom_property("rows_rejected") == len(rejects)

    # Each reject and warning is the expected row, with its row number and reason.
    expected_rejects = {n: c for n, c in records.items() if c[2] == "rejected"}
    assert sorted(int(r["row"]) for r in rejects) == sorted(expected_rejects)
    for r in rejects:
        name, _, _, _, fragment = expected_rejects[int(r["row"])]
        assert fragment in r["reason"], (name, r)
    expected_warnings = {n: c for n, c in records.items() if c[2] == "warned"}
    assert sorted(int(w["row"]) for w in warnings) == sorted(expected_warnings)
    for w in warnings:
        name, _, _, _, fragment = expected_warnings[int(w["row"])]
        assert w["reason"].startswith("image dropped, row kept") and fragment in w["reason"], (name, w)

    # What was written: the kept rows, with their photo where it was usable.
    by_id = {e.features.feature[features.ID].bytes_list.value[0].decode(): e for e in written}
    kept_ids = {c[1].split(b",", 1)[0].decode() for c in records.values() if c[2] in ("kept", "warned")}
    assert set(by_id) == kept_ids
    for n, (name, line, outcome, _, _) in records.items():
        if outcome in ("kept", "warned"):
            has_image = by_id[line.split(b",", 1)[0].decode()].features.feature[features.HAS_IMAGE]
            assert has_image.int64_list.value[0] == (1 if outcome == "kept" and b"images/" in line else 0), name
    assert "👨‍👩‍👧" in by_id["21"].features.feature[features.TITLE].bytes_list.value[0].decode()


class _FakeCategorizer:
    """Stands in for the serving model: every request gets the same path."""

    def __init__(self, model_dir):
        self.model_dir = str(model_dir)

    def predict(self, serialized):
        n = len(serialized)
        for s in serialized:
            tf.train.Example.FromString(s)  # requests are real tf.Examples
        path = np.array([b"Apparel > Topwear"] * n, dtype=object)
        return {features.OUT_PATH: path, features.OUT_FULL_PATH: path,
                features.OUT_CONFIDENCE: np.full(n, 0.9), features.OUT_FULL_CONFIDENCE: np.full(n, 0.9),
                features.OUT_DEPTH: np.full(n, 2), "full_depth": np.full(n, 2)}


def test_categorize_accounts_for_every_row(seeded, tmp_path, monkeypatch):
    import trainer.inference_client as categorize_module

    catalog, rows = seeded
    monkeypatch.setattr(categorize_module, "Categorizer", _FakeCategorizer)
    out = tmp_path / "out.csv"
    counts = categorize_module.categorize(str(catalog), "fashion", str(out), model_dir=str(tmp_path / "model"),
                                          batch_size=7)
    records = [(n, c) for n, c in sorted(rows.items()) if c[3] != "blank"]
    written = _csv_rows(out)
    # One output row per input record, in order; rows in = categorised + abstained + rejected.
    assert len(written) == len(records) == counts["rows"]
    assert counts["rows"] == counts["categorized"] + counts["abstained"] + counts["rejected"]
    for (n, (name, line, ingest, outcome, fragment)), result in zip(records, written):
        if outcome == "rejected":
            assert result["category_path"] == "" and result["reason"].startswith(f"rejected: row {n}: "), name
            assert fragment in result["reason"], (name, result)
        elif ingest == "warned":  # categorised from its title; the reason says why the photo was not used
            assert result["category_path"] == "Apparel > Topwear", (name, result)
            assert result["reason"].startswith("photo not used: ") and fragment in result["reason"], (name, result)
        else:
            assert result["category_path"] == "Apparel > Topwear" and result["reason"] == "", (name, result)
    assert counts["rejected"] == sum(c[3] == "rejected" for _, c in records)
    assert counts["photo_warnings"] == sum(c[2] == "warned" for _, c in records)
