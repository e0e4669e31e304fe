import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schema.catalog_spec import SpecError, available_specs, load_spec


def _write(tmp_path, data, suffix=".json"):
    path = tmp_path / f"spec{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else data)
    return path


BASE = {"name": "x", "id_column": "id", "title_column": "t", "label": {"columns": ["a", "b"]}, "max_depth": 2}


def test_shipped_specs_load():
    assert {"fashion", "flipkart"} <= set(available_specs())
    fashion = load_spec("fashion")
    assert fashion.label.columns == ("masterCategory", "subCategory", "articleType")
    assert fashion.image_column == "image"
    assert set(fashion.slice_columns) == {"gender", "season", "usage"}
    flipkart = load_spec("flipkart")
    assert flipkart.label.path_column == "product_category_tree"
    assert flipkart.label.drop_last_level_min_depth == 2


def test_roundtrip_json(tmp_path):
    spec = load_spec(_write(tmp_path, BASE))
    assert spec == type(spec).from_json(spec.to_json())


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "unknown field(s) ['colour']"),
        ({"max_depth": "3"}, "field 'max_depth' must be int"),
        ({"max_depth": True}, "field 'max_depth' must be an integer"),
        ({"max_depth": 3}, "names only 2 levels"),
        ({"label": {"columns": ["a"], "path_column": "p"}}, "exactly one of"),
        ({"label": {"path_column": "p", "encoding": "xml"}}, "label.encoding"),
        ({"label": {"columns": ["a", "b"], "sep": "/"}}, "label.sep"),
        ({"attribute_columns": ["level_1"]}, "reserved"),
        ({"attribute_columns": ["g"], "slice_columns": ["h"]}, "not attribute_columns"),
        ({"min_products_per_category": 0}, "min_products_per_category"),
    ],
)
def test_bad_specs_name_the_field(tmp_path, change, message):
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, {**BASE, **change}))
    assert message in str(err.value)
    assert "spec.json" in str(err.value)


def test_missing_required_field(tmp_path):
    data = dict(BASE)
    del data["title_column"]
    with pytest.raises(SpecError, match="missing required field 'title_column'"):
        load_spec(_write(tmp_path, data))


def test_yaml_is_loaded_safely(tmp_path):
    path = _write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n", ".yaml")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_unknown_spec_name():
    with pytest.raises(SpecError, match="not found"):
        load_spec("no-such-catalog")


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), st.one_of(st.integers(), st.text(), st.booleans(), st.none()),
                       max_size=6))
def test_arbitrary_mappings_fail_cleanly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("h") / "spec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError):
        load_spec(path)
