"""CatalogExampleGen's drivers: the input fingerprint (cache key) covers the photos.

- `CatalogDriver`: the driver class LocalDagRunner runs before the cache check.
- `python -m components.catalog_example_gen.driver ...`: the pre-cache-check command
  of the compiled pipeline (Vertex AI Pipelines runs it before the ExampleGen task and
  feeds what it writes into the task's cache key). It runs TFX's own Kubeflow V2
  file-based driver, then adds the catalog folder's fingerprint to the `input_fingerprint`
  it wrote, in the ExecutorOutput file (the KFP contract, not a TFX internal).
"""
from __future__ import annotations

import argparse
from typing import Optional

from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.example_gen import utils

from components.catalog_example_gen.fingerprint import CatalogInputProcessor, with_catalog_fingerprint


class CatalogDriver(example_gen_driver.FileBasedDriver):
    def get_input_processor(self, splits, range_config=None, input_base_uri: Optional[str] = None):
        return CatalogInputProcessor(input_base_uri, splits, range_config)


def add_catalog_fingerprint(output_file: str, input_base: str) -> str:
    """Appends the catalog folder's fingerprint to the driver's output; returns the new one."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.dsl.io import fileio

    with fileio.open(output_file, "rb") as handle:
        output = json_format.Parse(handle.read(), pipeline_spec_pb2.ExecutorOutput(), ignore_unknown_fields=True)
    key = utils.FINGERPRINT_PROPERTY_NAME
    fingerprint = with_catalog_fingerprint(output.parameter_values[key].string_value, input_base)
    output.parameter_values[key].string_value = fingerprint
    for artifact_list in output.artifacts.values():
        for artifact in artifact_list.artifacts:
            if key in artifact.metadata.fields:
                artifact.metadata.fields[key].string_value = fingerprint
    with fileio.open(output_file, "wb") as handle:
        handle.write(json_format.MessageToJson(output, sort_keys=True).encode())
    return fingerprint


def main(argv: list[str]) -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils
    from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver as v2_driver
    from tfx.types import standard_component_specs

    parser = argparse.ArgumentParser()  # the flags of TFX's driver; Beam args are ignored
    parser.add_argument("--json_serialized_invocation_args", required=True)
    parser.add_argument("--json_serialized_inputs_spec_args", default=None)
    args, _ = parser.parse_known_args(argv)
    v2_driver.main(args)
    executor_input = json_format.Parse(args.json_serialized_invocation_args, pipeline_spec_pb2.ExecutorInput(),
                                       ignore_unknown_fields=True)
    inputs_spec = None
    if args.json_serialized_inputs_spec_args:
        inputs_spec = json_format.Parse(args.json_serialized_inputs_spec_args,
                                        pipeline_spec_pb2.ComponentInputsSpec(), ignore_unknown_fields=True)
    exec_properties = kubeflow_v2_entrypoint_utils.parse_execution_properties(
        executor_input.inputs.parameter_values, executor_input.inputs.parameters, inputs_spec
    )
    add_catalog_fingerprint(executor_input.outputs.output_file, exec_properties[standard_component_specs.INPUT_BASE_KEY])


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
