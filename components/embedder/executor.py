"""Embedder executor: every split read, embedded in batches, written back (Beam).

First the word mapper is fitted on the train split's titles (schema/encoders/word_mapper.py)
and written to the `word_mapper` output; every split's examples then also get their
mapped title (`title_mapped`), which the n-gram features read.

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

from absl import logging

from components.run_console import rate_log
from schema import encoders, features
from schema.encoders import word_mapper
from schema.examples import first_bytes, iter_serialized

INPUT_EXAMPLES_KEY = "input_examples"
INPUT_SCHEMA_KEY = "input_schema"
EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
WORD_MAPPER_KEY = "word_mapper"
CACHE_DIR_KEY = "cache_dir"
SCHEMA_FILE = "schema.pbtxt"
DEFAULT_FILE_PREFIX = "data_tfrecord"
# Examples per encoder call (Beam's BatchElements, min and max). A call of 256 or more gives
# the text encoder four of its batches of 64 or more, so each core's worker has one or
# more, and the image network enough photos for its batches; calls of 16-64 left one text
# worker idle and paid the cache's transaction and the call's fixed costs per few rows.
# 512 is what `categorize` sends; larger calls only hold more photos in memory.
BATCH_SIZES = (256, 512)


def add_embedding_features(schema: schema_pb2.Schema, mapped_title: bool = False) -> schema_pb2.Schema:
    """The schema with `text_embedding` [512] and `image_embedding` [1280] as required
    fixed-shape FLOAT features, and with `mapped_title` the required BYTES [1]
    `title_mapped` (replacing any earlier definition)."""
    added = [(features.TEXT_EMBEDDING, schema_pb2.FLOAT, encoders.TEXT_DIM),
             (features.IMAGE_EMBEDDING, schema_pb2.FLOAT, encoders.IMAGE_DIM)]
    if mapped_title:
        added.append((features.TITLE_MAPPED, schema_pb2.BYTES, 1))
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    names = {features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING, features.TITLE_MAPPED}
    keep = [f for f in out.feature if f.name not in names]
    del out.feature[:]
    out.feature.extend(keep)
    for name, kind, dim in added:
        feature = out.feature.add()
        feature.name = name
        feature.type = kind
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add().size = dim
    return out


def fit_word_mapper(train_split_uri: str, cache) -> word_mapper.WordMapper:
    """The word mapper of the train split's titles (its words and their encoder vectors)."""
    titles = []
    for batch in iter_serialized(train_split_uri):
        titles.extend(first_bytes(tf.train.Example.FromString(r), features.TITLE).decode("utf-8", "replace")
                      for r in batch)
    return word_mapper.WordMapper.fit(titles, cache)


class EmbedDoFn(beam.DoFn):
    """A batch of tf.train.Examples -> the same examples with embeddings."""

    def __init__(self, cache_dir: Optional[str], mapper_file: str = ""):
        self._cache_dir = cache_dir
        self._mapper_file = mapper_file
        self._mapper = None
        self._cache = None
        self._examples = beam.metrics.Metrics.counter("embedder", "examples")
        self._hits = beam.metrics.Metrics.counter("embedder", "cache_hits")

    def setup(self):
        encoders.get_text_encoder().load()
        encoders.get_image_encoder().load()
        self._cache = encoders.open_cache(self._cache_dir)
        if self._mapper_file:
            self._mapper = word_mapper.WordMapper.load(self._mapper_file)
        self._progress = rate_log("Embedder")  # rows embedded and the rate, on the console

    def process(self, batch: List[tf.train.Example]):
        before = self._cache.hits if self._cache is not None else 0
        out = encoders.embed_examples(batch, self._cache, self._mapper)
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
        # The word mapper is fitted on the train split alone (the vocabulary the n-gram
        # features learn), then maps the titles of every split.
        mapper_file = ""
        if "train" in splits:
            mapper = fit_word_mapper(artifact_utils.get_split_uri([source], "train"), encoders.open_cache(cache_dir))
            mapper_file = os.path.join(artifact_utils.get_single_uri(output_dict[WORD_MAPPER_KEY]),
                                       word_mapper.FILE_NAME)
            mapper.save(mapper_file)
            logging.info("word mapper: %d train title words, threshold %.2f", len(mapper.vocabulary),
                         mapper.threshold)
        schema_out = artifact_utils.get_single_uri(output_dict[SCHEMA_KEY])
        io_utils.write_pbtxt_file(os.path.join(schema_out, SCHEMA_FILE),
                                  add_embedding_features(schema, mapped_title=bool(mapper_file)))

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
                    | f"Embed[{split}]" >> beam.ParDo(EmbedDoFn(cache_dir, mapper_file))
                    | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                        os.path.join(split_out, DEFAULT_FILE_PREFIX),
                        file_name_suffix=".gz",
                        coder=beam.coders.ProtoCoder(tf.train.Example),
                    )
                )
