"""Embedder: Examples in, the same Examples with text and image embeddings out.

Also passes the schema on with the two embedding features added (fixed shapes [512] and
[1280]), so Transform parses them as dense float tensors, and `title_mapped` (the title
with unseen words mapped to train words by the word mapper fitted on the train split,
also an output, which the Trainer exports with the model).
"""
from __future__ import annotations

from typing import Optional

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import BaseChannel, Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import WordMapperArtifact
from components.embedder import executor


class EmbedderSpec(ComponentSpec):
    PARAMETERS = {
        executor.CACHE_DIR_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        executor.INPUT_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.INPUT_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema, optional=True),
    }
    OUTPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        executor.WORD_MAPPER_KEY: ChannelParameter(type=WordMapperArtifact),
    }


class Embedder(base_beam_component.BaseBeamComponent):
    """Inputs `examples` (any splits) and optionally the `schema` they follow; outputs
    `examples` (same splits, embeddings added) and `schema` (the input schema, or an empty
    one, plus the two embedding features and `title_mapped`) and `word_mapper` (the word
    mapper fitted on the train split's titles; no file when there is no train split).

    `cache_dir`: local folder of the content-hash embedding cache; None means
    `<project>/.cache/embeddings`, "" turns the cache off."""

    SPEC_CLASS = EmbedderSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples: BaseChannel, cache_dir: Optional[str] = None,
                 schema: Optional[BaseChannel] = None):
        super().__init__(
            spec=EmbedderSpec(
                cache_dir=cache_dir,
                **{
                    executor.INPUT_EXAMPLES_KEY: examples,
                    executor.INPUT_SCHEMA_KEY: schema,
                    executor.EXAMPLES_KEY: Channel(type=standard_artifacts.Examples),
                    executor.SCHEMA_KEY: Channel(type=standard_artifacts.Schema),
                    executor.WORD_MAPPER_KEY: Channel(type=WordMapperArtifact),
                },
            )
        )
