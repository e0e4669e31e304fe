"""TaxonomyGen executor: counts category paths of the training split and builds the tree.

Counting is a Beam job (it scales with the catalog); the tree itself is small and built in
one place, `schema.taxonomy.Taxonomy.build`, the only code that maps paths to ids.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import apache_beam as beam
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from schema import features
from schema.examples import first_bytes
from schema.taxonomy import Taxonomy

EXAMPLES_KEY = "examples"
TAXONOMY_KEY = "taxonomy"
MAX_DEPTH_KEY = "max_depth"
MIN_COUNT_KEY = "min_count"
SPLIT_KEY = "split"


def _levels(example: tf.train.Example, max_depth: int) -> tuple[str, ...]:
    out = []
    for level in range(1, max_depth + 1):
        name = first_bytes(example, features.level_feature(level)).decode("utf-8")
        if not name:
            break
        out.append(name)
    return tuple(out)


def _build_and_save(path_counts: List[tuple], uri: str, max_depth: int, min_count: int) -> Taxonomy:
    paths = []
    for levels, count in path_counts:
        paths.extend([levels] * count)
    taxonomy = Taxonomy.build(paths, max_depth, min_count)
    taxonomy.save(uri)
    return taxonomy


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[Any]],
        output_dict: Dict[str, List[Any]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        split = exec_properties.get(SPLIT_KEY) or "train"
        max_depth = int(exec_properties[MAX_DEPTH_KEY])
        min_count = int(exec_properties[MIN_COUNT_KEY])
        split_uri = artifact_utils.get_split_uri(input_dict[EXAMPLES_KEY], split)
        output = artifact_utils.get_single_instance(output_dict[TAXONOMY_KEY])
        with self._make_beam_pipeline() as pipeline:
            _ = (
                pipeline
                | "ReadExamples"
                >> beam.io.ReadFromTFRecord(
                    os.path.join(split_uri, "*"), coder=beam.coders.ProtoCoder(tf.train.Example)
                )
                | "Levels" >> beam.Map(_levels, max_depth)
                | "DropUnlabelled" >> beam.Filter(bool)
                | "CountPaths" >> beam.combiners.Count.PerElement()
                | "Gather" >> beam.combiners.ToList()
                | "Build" >> beam.Map(_build_and_save, output.uri, max_depth, min_count)
            )
        taxonomy = Taxonomy.load(output.uri)
        output.set_int_custom_property("depth", taxonomy.depth)
        output.set_int_custom_property("num_leaves", len(taxonomy.leaves()))
        output.set_string_custom_property("summary", taxonomy.summary())
