"""Embedder executor: every split read, embedded in batches, written back (Beam).

Models load once per DoFn instance (`setup`); the content-hash cache (schema/encoders/) makes a
re-run on an unchanged catalog a read of the cache.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.run_console import rate_log
from schema import encoders, features

INPUT_EXAMPLES_KEY = "input_examples"
INPUT_SCHEMA_KEY = "input_schema"
EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
CACHE_DIR_KEY = "cache_dir"
SCHEMA_FILE = "schema.pbtxt"
DEFAULT_FILE_PREFIX = "data_tfrecord"
# Examples per encoder call (Beam's BatchElements, min and max). A call of 256 or more gives
# the text encoder four of its batches of 64 or more, so each core's worker has one or
# more, and the image network enough photos for its batches; calls of 16-64 left one text
# worker idle and paid the cache's transaction and the call's fixed costs per few rows.
# 512 is what `categorize` sends; larger calls only hold more photos in memory.
BATCH_SIZES = (256, 512)


def add_embedding_features(schema: schema_pb2.Schema) -> schema_pb2.Schema:
    """The schema with `text_embedding` [512] and `image_embedding` [1280] as required
    fixed-shape FLOAT features (replacing any earlier definition)."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    keep = [f for f in out.feature if f.name not in (features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING)]
    del out.feature[:]
    out.feature.extend(keep)
    for name, dim in ((features.TEXT_EMBEDDING, encoders.TEXT_DIM), (features.IMAGE_EMBEDDING, encoders.IMAGE_DIM)):
        feature = out.feature.add()
        feature.name = name
        feature.type = schema_pb2.FLOAT
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add().size = dim
    return out


class EmbedDoFn(beam.DoFn):
    """A batch of tf.train.Examples -> the same examples with embeddings."""

    def __init__(self, cache_dir: Optional[str]):
        self._cache_dir = cache_dir
        self._cache = None
        self._examples = beam.metrics.Metrics.counter("embedder", "examples")
        self._hits = beam.metrics.Metrics.counter("embedder", "cache_hits")

    def setup(self):
        encoders.get_text_encoder().load()
        encoders.get_image_encoder().load()
        self._cache = encoders.open_cache(self._cache_dir)
        self._progress = rate_log("Embedder")  # rows embedded and the rate, on the console

    def process(self, batch: List[tf.train.Example]):
        before = self._cache.hits if self._cache is not None else 0
        out = encoders.embed_examples(batch, self._cache)
        if self._cache is not None:
            self._hits.inc(self._cache.hits - before)
        self._examples.inc(len(out))
        self._progress.add(len(out))
        yield from out

    def finish_bundle(self):
        self._progress.flush()


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[Any]],
        output_dict: Dict[str, List[Any]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        rate_log("Embedder", restart=True)
        cache_dir = exec_properties.get(CACHE_DIR_KEY)
        source = artifact_utils.get_single_instance(input_dict[INPUT_EXAMPLES_KEY])
        output = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
        splits = artifact_utils.decode_split_names(source.split_names)
        output.split_names = artifact_utils.encode_split_names(splits)
        for prop in ("span", "version"):
            if source.has_property(prop):
                setattr(output, prop, getattr(source, prop))

        schema = schema_pb2.Schema()
        if input_dict.get(INPUT_SCHEMA_KEY):
            schema_uri = artifact_utils.get_single_uri(input_dict[INPUT_SCHEMA_KEY])
            schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri))
        schema_out = artifact_utils.get_single_uri(output_dict[SCHEMA_KEY])
        io_utils.write_pbtxt_file(os.path.join(schema_out, SCHEMA_FILE), add_embedding_features(schema))

        with self._make_beam_pipeline() as pipeline:
            for split in splits:
                split_in = artifact_utils.get_split_uri([source], split)
                split_out = artifact_utils.get_split_uri([output], split)
                _ = (
                    pipeline
                    | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
                        os.path.join(split_in, "*"), coder=beam.coders.ProtoCoder(tf.train.Example))
                    | f"Batch[{split}]" >> beam.BatchElements(min_batch_size=BATCH_SIZES[0],
                                                               max_batch_size=BATCH_SIZES[1])
                    | f"Embed[{split}]" >> beam.ParDo(EmbedDoFn(cache_dir))
                    | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                        os.path.join(split_out, DEFAULT_FILE_PREFIX),
                        file_name_suffix=".gz",
                        coder=beam.coders.ProtoCoder(tf.train.Example),
                    )
                )
