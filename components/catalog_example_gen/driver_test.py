"""The ExampleGen's cache key sees the photos: local driver and the Vertex pre-cache check."""
from __future__ import annotations

import json
import os

import pytest
from tfx.components.example_gen import utils
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

from components.catalog_example_gen import driver
from components.catalog_example_gen.fingerprint import catalog_fingerprint

INPUT_CONFIG = proto_utils.proto_to_json(
    example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="catalog", pattern="products.csv")]))


@pytest.fixture
def catalog(tmp_path):
    folder = tmp_path / "catalog"
    (folder / "images").mkdir(parents=True)
    (folder / "products.csv").write_text("id,productDisplayName,image\n1,Blue tee,images/1.jpg\n")
    (folder / "images" / "1.jpg").write_bytes(b"first photo")
    return folder


def _replace_photo(catalog, content: bytes) -> None:
    photo = catalog / "images" / "1.jpg"
    stat = photo.stat()
    photo.write_bytes(content)
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_fingerprint_changes_with_a_photo_and_only_then(catalog):
    first = catalog_fingerprint(str(catalog))
    assert first == catalog_fingerprint(str(catalog))
    assert first.startswith("catalog files:2,")
    _replace_photo(catalog, b"second photo, another size")
    changed = catalog_fingerprint(str(catalog))
    assert changed != first
    (catalog / "images" / "2.jpg").write_bytes(b"new")
    assert catalog_fingerprint(str(catalog)) not in (first, changed)


def test_missing_catalog_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        catalog_fingerprint(str(tmp_path / "nowhere"))


def test_local_driver_fingerprint_covers_the_photos(catalog):
    local = driver.CatalogDriver(metadata_handle=None)

    def fingerprint():
        props = {"input_base": str(catalog), "input_config": INPUT_CONFIG}
        return local.resolve_exec_properties(props, None, None)[utils.FINGERPRINT_PROPERTY_NAME]

    before = fingerprint()
    assert "split:catalog," in before and "catalog files:2," in before
    _replace_photo(catalog, b"a different photo")  # products.csv untouched
    assert fingerprint() != before


def test_vertex_pre_cache_check_fingerprint_covers_the_photos(catalog, tmp_path):
    """The driver command Vertex AI runs before the task: TFX's driver, then the photos."""
    def run_driver(name):
        output_file = tmp_path / name / "executor_output.json"
        executor_input = {
            "inputs": {"parameters": {"input_base": {"stringValue": str(catalog)},
                                      "input_config": {"stringValue": INPUT_CONFIG}}},
            "outputs": {"artifacts": {"examples": {"artifacts": [{
                "name": "projects/1/locations/l/metadataStores/default/artifacts/7",
                "type": {"instanceSchema": "title: tfx.Examples\ntype: object\n"},
                "uri": str(tmp_path / name / "examples")}]}},
                "outputFile": str(output_file)},
        }
        driver.main(["--json_serialized_invocation_args", json.dumps(executor_input), "--runner=DirectRunner"])
        written = json.loads(output_file.read_text())
        fingerprint = written["parameterValues"][utils.FINGERPRINT_PROPERTY_NAME]
        assert written["artifacts"]["examples"]["artifacts"][0]["metadata"][utils.FINGERPRINT_PROPERTY_NAME] == \
            fingerprint
        return fingerprint

    before = run_driver("first")
    assert "split:catalog" in before and catalog_fingerprint(str(catalog)) in before
    _replace_photo(catalog, b"a different photo")
    assert run_driver("second") != before
