"""CatalogExampleGen: a file-based ExampleGen that reads a merchant catalog through its spec.

Its driver fingerprints the whole catalog folder, the CSV and the photos
(components/catalog_example_gen/driver.py), so an unchanged catalog is served from the
TFX cache and a changed photo is not; it adds a `rejected` output so that rows it cannot
use are artifacts with lineage, not log lines.
"""
from __future__ import annotations

from typing import Any, Optional

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import RejectedRecords
from components.catalog_example_gen import executor
from components.catalog_example_gen.driver import CatalogDriver
from components.catalog_example_gen.fingerprint import CATALOG_FINGERPRINT_KEY
from schema import compat, features
from schema.catalog_spec import CatalogSpec

# Deterministic split by a hash of the product id: 80% train, 10% calibration, 10% eval.
SPLIT_BUCKETS = (("train", 16), ("calibration", 2), ("eval", 2))


class CatalogExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.CATALOG_SPEC_KEY: ExecutionParameter(type=str),
        executor.MAX_ROWS_KEY: ExecutionParameter(type=int, optional=True),
        # Open-source KFP runs no pre-cache-check driver: `submit` passes the catalog's
        # fingerprint as a pipeline parameter, so it is part of the task's cache key.
        CATALOG_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.REJECTED_KEY: ChannelParameter(type=RejectedRecords),
    }


class CatalogExampleGen(FileBasedExampleGen):
    SPEC_CLASS = CatalogExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = CatalogDriver  # its input fingerprint covers the photos too

    def __init__(self, catalog_dir: str, spec: CatalogSpec, max_rows: Optional[int] = None,
                 catalog_fingerprint: Any = None):
        """`catalog_fingerprint`: a value or RuntimeParameter that changes with the catalog
        (the KFP target's cache key); the drivers of the other orchestrators compute it."""
        input_config = example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="catalog", pattern=spec.csv_file)]
        )
        output_config = example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=buckets)
                    for name, buckets in SPLIT_BUCKETS
                ],
                partition_feature_name=features.ID,
            )
        )
        component_spec = CatalogExampleGenSpec(
            input_base=catalog_dir,
            input_config=input_config,
            output_config=output_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            catalog_spec=spec.to_json(),
            max_rows=max_rows or 0,
            catalog_fingerprint=catalog_fingerprint,
            examples=Channel(type=standard_artifacts.Examples),
            rejected=Channel(type=RejectedRecords),
        )
        # Skip FileBasedExampleGen.__init__ (it builds its own spec) but keep its class
        # attributes: the driver that fingerprints the input files.
        compat.init_with_spec(self, FileBasedExampleGen, component_spec)
