"""CatalogExampleGen executor: catalog CSV + images -> tf.Examples, rejects with reasons.

Reading goes through `schema.catalog_reader`, the same parser `categorize` uses. The CSV
is parsed in one worker (quoted multi-line fields make a CSV unsplittable); image reads,
the expensive part, are reshuffled across workers. A catalog with no usable row stops the
run with a CatalogError that names a copy of `rejected.csv` kept beside the pipeline root
(`<root>/rejected/<run>/`), since TFX deletes a failed step's outputs.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Dict, Iterator, List

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import artifact_utils

from schema import compat
from schema.catalog_reader import CatalogError, Product, Rejected, product_photo, read_catalog
from schema.catalog_spec import CatalogSpec
from schema.csv_cells import spreadsheet_safe
from schema.product_example import product_to_example

CATALOG_SPEC_KEY = "catalog_spec"
MAX_ROWS_KEY = "max_rows"
REJECTED_KEY = "rejected"
_REJECTED_URI = "_rejected_uri"

REJECTED_FILE = "rejected.csv"
WARNINGS_FILE = "warnings.csv"
COUNTS_FILE = "counts.json"
CSV_HEADER = "row,id,reason"

_REJECTED_TAG = "rejected"
_WARNING_TAG = "warnings"


def csv_line(row_number: int, product_id: str, reason: str) -> str:
    """One line of rejected.csv / warnings.csv, its text cells spreadsheet-safe."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([row_number, spreadsheet_safe(product_id), spreadsheet_safe(reason)])
    return out.getvalue()


def _read_rows(csv_path: str, spec: CatalogSpec, max_rows: int | None) -> Iterator[Any]:
    yield from read_catalog(csv_path, spec, max_rows=max_rows)


class _ToExample(beam.DoFn):
    """Product -> serialized-able tf.Example; Rejected -> the rejected output."""

    def __init__(self, spec_json: str, catalog_dir: str):
        self._spec_json = spec_json
        self._catalog_dir = catalog_dir
        self._spec: CatalogSpec | None = None

    def setup(self):
        self._spec = CatalogSpec.from_json(self._spec_json)

    def process(self, row):
        if isinstance(row, Rejected):
            yield beam.pvalue.TaggedOutput(_REJECTED_TAG, csv_line(row.row_number, row.id, row.reason))
            return
        assert isinstance(row, Product)
        photo = product_photo(self._catalog_dir, row)
        if photo.reject:
            yield beam.pvalue.TaggedOutput(_REJECTED_TAG, csv_line(row.row_number, row.id, photo.reject))
            return
        if photo.problem:
            yield beam.pvalue.TaggedOutput(
                _WARNING_TAG, csv_line(row.row_number, row.id, f"image dropped, row kept: {photo.problem}")
            )
        yield product_to_example(row, self._spec, photo.image)


def _write_csv(pcoll, path: str, label: str):
    return pcoll | f"Write{label}" >> beam.io.WriteToText(
        path, num_shards=1, shard_name_template="", header=CSV_HEADER
    )


def _write_counts(_, path: str, ingested: int, rejected: int, warnings: int) -> None:
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write(json.dumps({"ingested": ingested, "rejected": rejected, "image_warnings": warnings}))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _CatalogToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):
    spec_json = exec_properties[CATALOG_SPEC_KEY]
    spec = CatalogSpec.from_json(spec_json)
    catalog_dir = exec_properties["input_base"]
    csv_path = os.path.join(catalog_dir, split_pattern)
    max_rows = exec_properties.get(MAX_ROWS_KEY) or None
    rejected_uri = exec_properties[_REJECTED_URI]

    results = (
        pipeline
        | "CatalogFile" >> beam.Create([csv_path])
        | "ParseRows" >> beam.FlatMap(_read_rows, spec, max_rows)
        | "Spread" >> beam.Reshuffle()
        | "ToExample" >> beam.ParDo(_ToExample(spec_json, catalog_dir)).with_outputs(
            _REJECTED_TAG, _WARNING_TAG, main="examples"
        )
    )
    _write_csv(results[_REJECTED_TAG], os.path.join(rejected_uri, REJECTED_FILE), "Rejected")
    _write_csv(results[_WARNING_TAG], os.path.join(rejected_uri, WARNINGS_FILE), "Warnings")
    counts = {
        name: results[tag] | f"Count{name}" >> beam.combiners.Count.Globally()
        for name, tag in (("ingested", "examples"), ("rejected", _REJECTED_TAG), ("warnings", _WARNING_TAG))
    }
    _ = (
        pipeline
        | "CountsTrigger" >> beam.Create([None])
        | "WriteCounts"
        >> beam.Map(
            _write_counts,
            os.path.join(rejected_uri, COUNTS_FILE),
            beam.pvalue.AsSingleton(counts["ingested"]),
            beam.pvalue.AsSingleton(counts["rejected"]),
            beam.pvalue.AsSingleton(counts["warnings"]),
        )
    )
    return results["examples"]


def read_counts(rejected_uri: str) -> dict:
    with tf.io.gfile.GFile(os.path.join(rejected_uri, COUNTS_FILE)) as handle:
        return json.loads(handle.read())


class Executor(BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CatalogToExample

    def Do(
        self,
        input_dict: Dict[str, List[Any]],
        output_dict: Dict[str, List[Any]],
        exec_properties: Dict[str, Any],
    ) -> None:
        rejected = artifact_utils.get_single_instance(output_dict[REJECTED_KEY])
        exec_properties = dict(exec_properties)
        exec_properties[_REJECTED_URI] = rejected.uri
        super().Do(input_dict, output_dict, exec_properties)
        counts = read_counts(rejected.uri)
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        for artifact in (examples, rejected):
            artifact.set_int_custom_property("rows_ingested", counts["ingested"])
            artifact.set_int_custom_property("rows_rejected", counts["rejected"])
            artifact.set_int_custom_property("image_warnings", counts["image_warnings"])
        if counts["ingested"] == 0:
            kept = self._keep_rejects(rejected.uri)
            raise CatalogError(
                f"no usable rows in {exec_properties['input_base']}: all {counts['rejected']} rows were "
                f"rejected; reasons are in {os.path.join(kept, REJECTED_FILE)}"
            )

    def _keep_rejects(self, rejected_uri: str) -> str:
        """Copies the rejects of a failing step to `<pipeline root>/rejected/<run>/` (TFX
        deletes a failed step's outputs); -> that folder. Run and root: schema/compat.py."""
        run, root = compat.run_and_root(self, rejected_uri)
        kept = os.path.join(root, "rejected", str(run or os.path.basename(rejected_uri.rstrip("/"))))
        tf.io.gfile.makedirs(kept)
        for name in (REJECTED_FILE, WARNINGS_FILE, COUNTS_FILE):
            source = os.path.join(rejected_uri, name)
            if tf.io.gfile.exists(source):
                tf.io.gfile.copy(source, os.path.join(kept, name), overwrite=True)
        return kept
