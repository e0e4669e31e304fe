"""Bad input, case by case (issue #7): every case is either refused with a message that names
the row or file, or kept with what can be kept. The accounting identity over a catalog that
holds all of them at once is in tests/test_accounting.py."""
from __future__ import annotations

import io
import json
import os
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from schema import catalog_reader
from schema.catalog_reader import (
    MAX_IMAGE_PIXELS, MAX_TEXT_CHARS, CatalogError, Product, Rejected, load_image_bytes, read_catalog,
)
from schema.catalog_spec import SpecError, load_spec

FASHION = load_spec("fashion")
HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"


def row(id_="1", title="Puma Men Blue Tee", image="", levels=("Apparel", "Topwear", "Tshirts")) -> str:
    return f"{id_},Men,{levels[0]},{levels[1]},{levels[2]},Blue,Summer,2012,Casual,{title},{image}\n"


def _csv(tmp_path, body, header=HEADER, name="products.csv"):
    path = tmp_path / name
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    path.write_bytes(header.encode("utf-8") + data)
    return path


def _read(path, spec=FASHION, **kw):
    return list(read_catalog(path, spec, **kw))


def _rejected(rows) -> dict[int, str]:
    return {r.row_number: r.reason for r in rows if isinstance(r, Rejected)}


def _kept(rows) -> list[Product]:
    return [r for r in rows if isinstance(r, Product)]


# ---- CSV structure --------------------------------------------------------------------

def test_unbalanced_quote_costs_one_row(tmp_path):
    body = row("1") + row("2", title='"Tee with an open quote') + row("3") + row("4")
    rows = _read(_csv(tmp_path, body))
    assert [r.id for r in _kept(rows)] == ["1", "3", "4"]  # parsing resumes on the next line
    reasons = _rejected(rows)
    assert list(reasons) == [3] and "unbalanced quotes" in reasons[3]
    assert rows[1].id == "2"


def test_quote_closed_on_a_later_line_is_one_rejected_row(tmp_path):
    # The quote opened in row 3 pairs with a quote on row 4: strict parsing fails, row 3 is
    # rejected and rows 4 and 5 are read again on their own.
    body = row("1") + row("2", title='"Tee 5') + row("3", title='Tee" 7') + row("4")
    rows = _read(_csv(tmp_path, body))
    reasons = _rejected(rows)
    assert 3 in reasons and "unparseable CSV" in reasons[3]
    assert {"1", "4"} <= {r.id for r in _kept(rows)}
    assert len(rows) == 4  # one outcome per record


def test_quoted_multiline_field_is_one_row(tmp_path):
    body = row("1", title='"Tee, two\nlines"') + row("2")
    rows = _read(_csv(tmp_path, body))
    assert [r.id for r in _kept(rows)] == ["1", "2"]
    assert [r.row_number for r in rows] == [2, 4]  # physical line where each record starts


def test_wrong_column_count(tmp_path):
    rows = _read(_csv(tmp_path, row("1") + "2,Men,Apparel\n" + row("3").rstrip("\n") + ",extra\n"))
    reasons = _rejected(rows)
    assert reasons[3] == "has 3 columns, header has 11"
    assert reasons[4] == "has 12 columns, header has 11"


def test_header_missing_a_column_names_file_field_and_column(tmp_path):
    path = _csv(tmp_path, "1,Men\n", header=HEADER.replace(",productDisplayName", ""), name="cat.csv")
    with pytest.raises(CatalogError) as err:
        _read(path)
    message = str(err.value)
    assert "cat.csv" in message and "title_column 'productDisplayName'" in message
    with pytest.raises(CatalogError, match="cat.csv"):
        catalog_reader.check_catalog(path, FASHION)


def test_non_utf8_bytes(tmp_path):
    rows = _read(_csv(tmp_path, row("1").encode() + b"2,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Caf\xe9,\n"))
    assert _rejected(rows) == {3: "non-UTF-8 bytes in row"}
    assert rows[1].id == "2"


def test_empty_file_header_only_and_blank_lines(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(CatalogError, match="empty.csv: the file is empty"):
        _read(tmp_path / "empty.csv")
    assert _read(_csv(tmp_path, "", name="header_only.csv")) == []
    rows = _read(_csv(tmp_path, "\n" + row("1") + "\n\n" + row("2") + "   \n", name="blank.csv"))
    assert [(r.row_number, r.id) for r in rows] == [(3, "1"), (6, "2")]


# ---- ids and text ---------------------------------------------------------------------

def test_missing_and_duplicate_ids(tmp_path):
    rows = _read(_csv(tmp_path, row("1", "first") + row("", "no id") + row("1", "second") + row("1", "third")))
    assert [r.title for r in _kept(rows)] == ["first"]
    reasons = _rejected(rows)
    assert reasons[3] == "empty id column 'id'"
    assert reasons[4] == reasons[5] == "duplicate id (first seen at row 2)"


def test_empty_title_without_photo_is_rejected_with_photo_kept(tmp_path):
    rows = _read(_csv(tmp_path, row("1", title="") + row("2", title="", image="images/2.jpg")))
    assert _rejected(rows) == {2: "no title, description or image"}
    assert _kept(rows)[0].id == "2" and _kept(rows)[0].image_path == "images/2.jpg"


def test_huge_title_is_truncated_and_kept(tmp_path):
    title = "Tee " * 25_000  # 100 KB
    (product,) = _read(_csv(tmp_path, row("1", title=title)))
    assert isinstance(product, Product)
    assert len(product.title) == MAX_TEXT_CHARS and title.startswith(product.title)


def test_control_characters_removed_scripts_and_emoji_kept(tmp_path):
    texts = {
        "2": ("Tee\x07with\x1bcontrol\u202echars\u200b", "Tee with control chars"),
        "3": ("قميص رجالي أزرق", "قميص رجالي أزرق"),  # Arabic, right to left
        "4": ("חולצה כחולה", "חולצה כחולה"),  # Hebrew
        "5": ("男士蓝色T恤 メンズ 티셔츠", "男士蓝色T恤 メンズ 티셔츠"),  # Chinese, Japanese, Korean
        "6": ("Tee 👕 for the family 👨‍👩‍👧 🇮🇳 👍🏽", "Tee 👕 for the family 👨‍👩‍👧 🇮🇳 👍🏽"),  # ZWJ sequence kept
        "7": ("کتاب‌ها", "کتاب‌ها"),  # Persian with a zero-width non-joiner
    }
    body = "".join(row(i, title=raw) for i, (raw, _) in texts.items())
    rows = _read(_csv(tmp_path, body))
    assert {r.id: r.title for r in rows} == {i: clean for i, (_, clean) in texts.items()}


# ---- labels -----------------------------------------------------------------------------

def _path_spec(tmp_path, max_depth=2):
    spec = {"name": "paths", "id_column": "id", "title_column": "title",
            "label": {"path_column": "category", "separator": " > "}, "max_depth": max_depth}
    (tmp_path / "paths.json").write_text(json.dumps(spec))
    return load_spec(tmp_path / "paths.json")


def test_labels_deeper_than_max_depth_are_truncated(tmp_path):
    spec = _path_spec(tmp_path)
    path = _csv(tmp_path, "1,Tee,A > B > C > D\n2,Shirt,A\n", header="id,title,category\n")
    assert [r.levels for r in _read(path, spec)] == [["A", "B"], ["A"]]


def test_empty_level_in_the_middle_is_rejected(tmp_path):
    spec = _path_spec(tmp_path, max_depth=3)
    path = _csv(tmp_path, "1,Tee,A >  > C\n", header="id,title,category\n")
    assert "empty level 2" in _rejected(_read(path, spec))[2]
    body = row("1", levels=("Apparel", "", "Tshirts")) + row("2", levels=("Apparel", "Topwear", ""))
    rows = _read(_csv(tmp_path, body, name="gap.csv"))
    assert _rejected(rows) == {2: "empty level 2 in category path ['Apparel', '', 'Tshirts']"}
    assert rows[1].levels == ["Apparel", "Topwear"]  # an empty last level is just a shorter path


# ---- spec -------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"label": {"columns": "a"}}, "field 'label.columns' must be list"),
    ({"image_column": 3}, "field 'image_column' must be str or null"),
    ({"label": {"columns": ["a", "b"]}, "titel_column": "t"}, "unknown field(s) ['titel_column']"),
])
def test_spec_wrong_types_and_unknown_keys(tmp_path, change, message):
    base = {"name": "x", "id_column": "id", "title_column": "t", "label": {"columns": ["a", "b"]}, "max_depth": 2}
    (tmp_path / "s.json").write_text(json.dumps({**base, **change}))
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path / "s.json")
    assert message in str(err.value) and "s.json" in str(err.value)


def test_run_refuses_a_catalog_missing_a_spec_column_at_start(tmp_path, capsys):
    import pipeline

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    _csv(catalog, row("1"), header=HEADER.replace(",articleType", ""))
    argv = ["run", "--catalog", str(catalog), "--spec", "fashion", "--pipeline-root", str(tmp_path / "root")]
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err
    assert "products.csv" in err and "label.columns 'articleType'" in err
    assert not (tmp_path / "root").exists()  # refused before any component ran


@pytest.mark.parametrize("size", ["0", "-5", "many"])
def test_categorize_refuses_a_batch_size_below_one_before_reading_anything(tmp_path, capsys, size):
    import pipeline

    argv = ["categorize", "--catalog", str(tmp_path / "missing"), "--spec", "fashion",
            "--output", str(tmp_path / "out.csv"), "--batch-size", size]
    with pytest.raises(SystemExit) as stopped:
        pipeline.main(argv)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "--batch-size" in err and repr(size) in err
    assert "Traceback" not in err and not (tmp_path / "out.csv").exists()


def test_run_whose_rows_are_all_rejected_ends_with_an_error_line_naming_the_rejects(tmp_path, capsys):
    """The whole run stops (no model can be trained), without a traceback, and the reasons
    survive TFX's clean-up of the failed step (issue #21)."""
    import pipeline

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    _csv(catalog, "".join(row(str(i), title="") for i in range(60)))
    root = tmp_path / "root"
    argv = ["run", "--catalog", str(catalog), "--spec", "fashion", "--pipeline-root", str(root),
            "--serving-dir", str(tmp_path / "serving"), "--preset", "small", "--embedding-cache-dir", ""]
    assert pipeline.main(argv) == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert "all 60 rows were rejected; reasons are in " in line and "Traceback" not in err
    kept = line.rsplit("reasons are in ", 1)[1].split()[0]
    assert kept.startswith(str(root / "rejected")) and kept.endswith("rejected.csv")
    rejects = open(kept, encoding="utf-8").read().splitlines()
    assert len(rejects) == 61 and "no title, description or image" in rejects[1]


# ---- images -----------------------------------------------------------------------------

def _save(tmp_path, name, image, fmt, **kw):
    image.save(tmp_path / name, fmt, **kw)
    return name


@pytest.mark.parametrize("name, mode, fmt", [
    ("rgb.jpg", "RGB", "JPEG"), ("gray.jpg", "L", "JPEG"), ("cmyk.jpg", "CMYK", "JPEG"),
    ("photo.png", "RGBA", "PNG"), ("photo.gif", "P", "GIF"), ("photo.webp", "RGB", "WEBP"),
])
def test_accepted_image_formats_keep_their_bytes(tmp_path, name, mode, fmt):
    _save(tmp_path, name, Image.new(mode, (40, 30)), fmt)
    data = load_image_bytes(tmp_path, name)
    assert data == (tmp_path / name).read_bytes()  # kept encoded
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        assert img.format == fmt and img.size == (40, 30) and img.mode == mode


def test_missing_truncated_and_corrupt_images(tmp_path):
    with pytest.raises(ValueError, match="'missing.jpg' not found"):
        load_image_bytes(tmp_path, "missing.jpg")
    buffer = io.BytesIO()
    Image.effect_noise((200, 200), 64).convert("RGB").save(buffer, "JPEG", quality=95)
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ValueError, match="'truncated.jpg' cannot be decoded.*truncated"):
        load_image_bytes(tmp_path, "truncated.jpg")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 20)
    with pytest.raises(ValueError, match="'corrupt.jpg' cannot be decoded"):
        load_image_bytes(tmp_path, "corrupt.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="'empty.jpg' is empty"):
        load_image_bytes(tmp_path, "empty.jpg")
    _save(tmp_path, "photo.bmp", Image.new("RGB", (4, 4)), "BMP")
    with pytest.raises(ValueError, match="not one of the accepted formats"):
        load_image_bytes(tmp_path, "photo.bmp")


def _png_with_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose header claims another size: Image.open sees only the header."""
    buffer = io.BytesIO()
    Image.new("1", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    def no_decoding(*_):
        raise AssertionError("decoded before the pixel check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "verify", no_decoding)
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1  # over our limit, under PIL's own
    (tmp_path / "big.png").write_bytes(_png_with_size(side, side))
    with pytest.raises(ValueError, match=f"'big.png' has {side}x{side} pixels, over the limit"):
        load_image_bytes(tmp_path, "big.png")


def test_decompression_bomb_error_and_warning_are_refusals(tmp_path, monkeypatch):
    (tmp_path / "bomb.png").write_bytes(_png_with_size(30_000, 30_000))  # 900 Mpx: PIL's own error
    # PIL refuses in Image.open (DecompressionBombError), before our size check.
    with pytest.raises(ValueError, match="'bomb.png' is over the pixel limit .*could be decompression bomb"):
        load_image_bytes(tmp_path, "bomb.png")
    # PIL's warning band (between its limit and twice it) is a refusal too, not a log line.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _save(tmp_path, "warn.png", Image.new("RGB", (40, 40)), "PNG")  # 1600 px: warning, not error
    with pytest.raises(ValueError, match="'warn.png' is over the pixel limit .*could be decompression bomb"):
        load_image_bytes(tmp_path, "warn.png")


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_reader, "MAX_IMAGE_BYTES", 100)
    _save(tmp_path, "noise.png", Image.effect_noise((64, 64), 64), "PNG")
    with pytest.raises(ValueError, match="'noise.png' is .* bytes, over 100"):
        load_image_bytes(tmp_path, "noise.png")


def test_image_paths_escaping_the_catalog_are_refused(tmp_path):
    catalog = tmp_path / "catalog"
    (catalog / "images").mkdir(parents=True)
    _save(tmp_path, "outside.jpg", Image.new("RGB", (4, 4)), "JPEG")
    (catalog / "images" / "dirlink").symlink_to(tmp_path)
    for bad, reason in (("../outside.jpg", "escapes"), ("images/../../outside.jpg", "escapes"),
                        (str(tmp_path / "outside.jpg"), "absolute"), ("images/dirlink/../../../outside.jpg", "escapes"),
                        ("/images/x.jpg", "absolute")):
        with pytest.raises(ValueError, match=reason):
            load_image_bytes(catalog, bad)


def test_symlinks_inside_the_catalog_folder_are_followed(tmp_path):
    """The catalog's paths are the merchant's text: they must stay inside the folder. The
    links in the folder are its owner's choice (an `images/` linked to a photo store, one
    photo linked to another), so they are followed."""
    store = tmp_path / "photo_store"
    store.mkdir()
    _save(store, "a.jpg", Image.new("RGB", (8, 8), "red"), "JPEG")
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "images").symlink_to(store)
    (catalog / "alias.jpg").symlink_to(store / "a.jpg")
    assert load_image_bytes(catalog, "images/a.jpg") == (store / "a.jpg").read_bytes()
    assert load_image_bytes(catalog, "alias.jpg") == (store / "a.jpg").read_bytes()
    (catalog / "products.csv").write_text(HEADER + row("1", image="images/a.jpg"))
    (product,) = _read(catalog / "products.csv")
    assert product.image_path == "images/a.jpg"


@pytest.mark.parametrize("make, reason", [
    (lambda d: (d / "loop.jpg").symlink_to(d / "loop.jpg"), "symlink loop"),
    (lambda d: ((d / "a.jpg").symlink_to(d / "b.jpg"), (d / "b.jpg").symlink_to(d / "a.jpg")), "symlink loop"),
    (lambda d: (d / "dir.jpg").mkdir(), "is a folder"),
    (lambda d: os.mkfifo(d / "fifo.jpg"), "not a regular file"),
    (lambda d: (d / "dev.jpg").symlink_to("/dev/zero"), "not a regular file"),
    (lambda d: (d / "dangling.jpg").symlink_to(d / "gone.jpg"), "not found"),
    (lambda d: (d / "file.jpg").write_bytes(b"x"), "not found"),  # used as a folder below
    (None, "too long"),
])
def test_file_system_oddities_are_image_reasons_not_crashes(tmp_path, make, reason):
    folder = tmp_path / "catalog"
    folder.mkdir()
    if make is None:
        name = "x" * 300 + ".jpg"
    else:
        make(folder)
        name = {"symlink loop": "loop.jpg" if "loop.jpg" in os.listdir(folder) else "a.jpg",
                "is a folder": "dir.jpg", "not a regular file": "fifo.jpg" if os.path.exists(folder / "fifo.jpg")
                else "dev.jpg", "not found": "dangling.jpg" if os.path.islink(folder / "dangling.jpg")
                else "file.jpg/inner.jpg"}[reason]
    with pytest.raises(ValueError, match=reason):
        load_image_bytes(folder, name)


def test_an_unreadable_image_is_a_reason(tmp_path, monkeypatch):
    _save(tmp_path, "ok.jpg", Image.new("RGB", (4, 4)), "JPEG")
    real_open = os.open

    def deny(path, *args, **kwargs):
        if str(path).endswith("ok.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(catalog_reader.os, "open", deny)
    with pytest.raises(ValueError, match="'ok.jpg' cannot be read: Permission denied"):
        load_image_bytes(tmp_path, "ok.jpg")


def test_duplicate_header_names_are_refused(tmp_path):
    header = HEADER.rstrip("\n") + ",productDisplayName\n"
    path = _csv(tmp_path, row("1").rstrip("\n") + ",\n", header=header)
    with pytest.raises(CatalogError, match=r"names column 'productDisplayName' twice \(columns 10 and 12\)"):
        _read(path)
    # Unnamed columns (trailing commas of a spreadsheet export) are never read: allowed.
    path = _csv(tmp_path, row("1").rstrip("\n") + ",,\n", header=HEADER.rstrip("\n") + ",,\n")
    assert [r.id for r in _kept(_read(path))] == ["1"]


@pytest.mark.parametrize("csv_file", ["../../../../etc/passwd", "/etc/passwd", "sub/../../x.csv", ".."])
def test_spec_csv_file_outside_the_catalog_folder_is_refused(tmp_path, csv_file):
    text = (tmp_path / "spec.yaml")
    text.write_text(f"name: t\nid_column: id\ntitle_column: t\nmax_depth: 1\nlabel: {{columns: [c]}}\n"
                    f"csv_file: '{csv_file}'\n")
    with pytest.raises(SpecError, match="field 'csv_file' must be a file inside the catalog folder"):
        load_spec(str(text))


def test_spec_csv_file_in_a_subfolder_is_fine(tmp_path):
    text = (tmp_path / "spec.yaml")
    text.write_text("name: t\nid_column: id\ntitle_column: t\nmax_depth: 1\nlabel: {columns: [c]}\n"
                    "csv_file: data/products.csv\n")
    assert load_spec(str(text)).csv_file == "data/products.csv"
