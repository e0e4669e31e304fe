import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from schema.catalog_reader import (
    CatalogError, Photo, Product, Rejected, clean_path, load_image_bytes, product_photo, read_catalog, resolve_image,
)
from schema.catalog_spec import load_spec

FASHION = load_spec("fashion")
FLIPKART = load_spec("flipkart")
HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"


def _catalog(tmp_path, body: str, header: str = HEADER, name="products.csv"):
    path = tmp_path / name
    path.write_bytes((header + body).encode("utf-8") if isinstance(body, str) else header.encode() + body)
    return path


def _rows(path, spec=FASHION, **kw):
    return list(read_catalog(path, spec, **kw))


def test_reads_products_with_attributes(tmp_path):
    path = _catalog(tmp_path, "1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Puma Men Blue Tee,images/1.jpg\n")
    (row,) = _rows(path)
    assert isinstance(row, Product)
    assert row.levels == ["Apparel", "Topwear", "Tshirts"]
    assert row.category_path == "Apparel > Topwear > Tshirts"
    assert row.attributes["gender"] == "Men" and row.image_path == "images/1.jpg"


def test_every_row_is_accounted_for(tmp_path):
    body = (
        "1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Tee,\n"
        "1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Duplicate,\n"
        ",Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,No id,\n"
        "4,Men,Apparel,,Tshirts,Blue,Summer,2012,Casual,Gap in path,\n"
        "5,Men,,,,Blue,Summer,2012,Casual,No category,\n"
        "6,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,,\n"
        "7,too,few,columns\n"
        "\n"
        "8,Women,Footwear,Shoes,Heels,Red,Winter,2013,Party,Heels \x07with\u202e control,\n"
    )
    rows = _rows(_catalog(tmp_path, body))
    assert len(rows) == 8  # the blank line is not a record
    rejected = {r.row_number: r.reason for r in rows if isinstance(r, Rejected)}
    assert "duplicate id (first seen at row 2)" in rejected[3]
    assert "empty id" in rejected[4]
    assert "empty level 2" in rejected[5]
    assert rejected[6] == "no category"
    assert "no title" in rejected[7]
    assert "columns" in rejected[8]
    kept = [r for r in rows if isinstance(r, Product)]
    assert [r.id for r in kept] == ["1", "8"]
    assert kept[1].title == "Heels with control"


def test_non_utf8_row_is_rejected_not_fatal(tmp_path):
    good = "1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Tee,\n".encode()
    bad = "2,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Caf".encode() + b"\xe9,\n"
    rows = _rows(_catalog(tmp_path, good + bad))
    assert isinstance(rows[0], Product)
    assert isinstance(rows[1], Rejected) and "non-UTF-8" in rows[1].reason


def test_file_level_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CatalogError, match="empty.csv: the file is empty"):
        _rows(empty)
    missing_col = _catalog(tmp_path, "", header="id,productDisplayName\n", name="short.csv")
    with pytest.raises(CatalogError, match="short.csv: header lacks column"):
        _rows(missing_col)
    # categorize needs no label columns
    assert _rows(_catalog(tmp_path, "1,Tee,\n", header="id,productDisplayName,image\n", name="nolabel.csv"),
                 require_label=False)[0].title == "Tee"


def test_header_only_and_max_rows(tmp_path):
    assert _rows(_catalog(tmp_path, "")) == []
    body = "".join(f"{i},Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Tee {i},\n" for i in range(10))
    assert len(_rows(_catalog(tmp_path, body, name="ten.csv"), max_rows=4)) == 4


def _flip(path: str) -> dict:
    return {"product_category_tree": path}


def test_flipkart_reference_convention():
    assert clean_path(FLIPKART, _flip('["Clothing >> Men\'s Clothing >> Jeans >> Wrangler Jeans >> X"]')) == [
        "Clothing", "Men's Clothing", "Jeans"]
    assert clean_path(FLIPKART, _flip('["Footwear >> Women\'s Footwear >> Ballerinas >> AW Bellies"]')) == [
        "Footwear", "Women's Footwear", "Ballerinas"]
    assert clean_path(FLIPKART, _flip('["Pet Supplies >> Grooming"]')) == ["Pet Supplies"]
    assert clean_path(FLIPKART, _flip('["eBooks"]')) == ["eBooks"]
    assert clean_path(FLIPKART, _flip('["A >> B >> C >> "]')) == ["A", "B"]  # trailing separator
    with pytest.raises(ValueError, match="not a JSON list"):
        clean_path(FLIPKART, _flip("Clothing >> Jeans"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12), max_size=8))
def test_path_cleaner_properties(parts):
    raw = '["' + " >> ".join(p.replace('"', "").replace("\\", "") for p in parts) + '"]'
    try:
        levels = clean_path(FLIPKART, _flip(raw))
    except ValueError as err:
        assert str(err)  # always a readable reason
        return
    assert 1 <= len(levels) <= FLIPKART.max_depth
    assert all(level and level == level.strip() for level in levels)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=12), max_size=6))
def test_one_outcome_per_record(tmp_path_factory, rows):
    """Any well-formed CSV: every record that is not a blank line gives exactly one Product
    or Rejected, in file order, at the physical line where the record starts; nothing is
    dropped and nothing raises."""
    out = io.StringIO()
    writer = csv.writer(out)
    lines_before = [HEADER.count("\n")]  # physical lines before each record
    for row in rows:
        start = out.tell()
        writer.writerow(row)
        written = out.getvalue()[start:]
        lines_before.append(lines_before[-1] + written.count("\n") + written.replace("\r\n", "").count("\r"))
    path = tmp_path_factory.mktemp("p") / "products.csv"
    path.write_bytes((HEADER + out.getvalue()).encode("utf-8", errors="surrogatepass"))
    parsed = _rows(path)
    records = [(lines_before[i] + 1, row) for i, row in enumerate(rows)
               if not (len(row) == 1 and not row[0].strip())]  # a blank line is not a record
    assert [r.row_number for r in parsed] == [line for line, _ in records]
    assert all(isinstance(r, (Product, Rejected)) for r in parsed)
    for outcome, (_, row) in zip(parsed, records):
        if isinstance(outcome, Product):  # kept only when the row has every column
            assert len(row) == len(HEADER.split(","))


def test_image_paths_cannot_escape(tmp_path):
    (tmp_path / "images").mkdir()
    outside = tmp_path.parent / "secret.jpg"
    Image.new("RGB", (4, 4)).save(outside)
    (tmp_path / "images" / "link.jpg").symlink_to(outside)
    for bad in ("../secret.jpg", str(outside), "images/../../secret.jpg", "images/link.jpg/../../../secret.jpg"):
        with pytest.raises(ValueError, match="absolute|escapes"):
            resolve_image(tmp_path, bad)
    # A link placed in the catalog folder is the folder owner's choice: followed.
    assert resolve_image(tmp_path, "images/link.jpg") == tmp_path / "images" / "link.jpg"


def test_images_are_checked(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    assert load_image_bytes(tmp_path, "ok.png")[:4] == b"\x89PNG"
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match="cannot be decoded"):
        load_image_bytes(tmp_path, "broken.jpg")
    with pytest.raises(ValueError, match="not found"):
        load_image_bytes(tmp_path, "missing.jpg")


def test_the_photo_rule_keeps_a_row_with_text_and_rejects_one_without(tmp_path):
    """`product_photo`, the one rule the ingest and `categorize` apply: an unusable photo
    is dropped from a row that has a title or description, and rejects a row with neither."""
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    def product(title, description, image):
        return Product(2, "p1", title, description, image, [], {})

    good = product_photo(tmp_path, product("", "", "ok.png"))
    assert good.image[:4] == b"\x89PNG" and not good.problem and not good.reject
    assert product_photo(tmp_path, product("T", "", "")) == Photo(None)  # no photo: nothing to say
    kept = product_photo(tmp_path, product("", "a description", "broken.jpg"))
    assert kept.image is None and "cannot be decoded" in kept.problem and not kept.reject
    refused = product_photo(tmp_path, product("", "", "missing.jpg"))
    assert refused.image is None and refused.reject.startswith("no title and unusable image: ")
    assert "not found" in refused.reject
