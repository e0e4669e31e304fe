"""CatalogExampleGen: a file-based ExampleGen that reads a merchant catalog through its spec.

It keeps FileBasedExampleGen's driver, so the input CSV is fingerprinted and an unchanged
catalog is served from the TFX cache, and adds a `rejected` output so that rows it cannot
use are artifacts with lineage, not log lines.
"""
from __future__ import annotations

from typing import Optional

from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.channel import Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import RejectedRecords
from components.catalog_example_gen import executor
from schema import features
from schema.catalog_spec import CatalogSpec

# Deterministic split by a hash of the product id: 80% train, 10% calibration, 10% eval.
SPLIT_BUCKETS = (("train", 16), ("calibration", 2), ("eval", 2))


class CatalogExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.CATALOG_SPEC_KEY: ExecutionParameter(type=str),
        executor.MAX_ROWS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        standard_component_specs.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.REJECTED_KEY: ChannelParameter(type=RejectedRecords),
    }


class CatalogExampleGen(FileBasedExampleGen):
    SPEC_CLASS = CatalogExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, catalog_dir: str, spec: CatalogSpec, max_rows: Optional[int] = None):
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
            examples=Channel(type=standard_artifacts.Examples),
            rejected=Channel(type=RejectedRecords),
        )
        # Skip FileBasedExampleGen.__init__ (it builds its own spec) but keep its class
        # attributes: the driver that fingerprints the input files.
        super(FileBasedExampleGen, self).__init__(spec=component_spec)
