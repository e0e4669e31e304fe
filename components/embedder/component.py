"""Embedder: Examples in, the same Examples with text and image embeddings out.

Also passes the schema on with the two embedding features added (fixed shapes [512] and
[1280]), so Transform parses them as dense float tensors.
"""
from __future__ import annotations

from typing import Optional

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import BaseChannel, Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

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
    }


class Embedder(base_beam_component.BaseBeamComponent):
    """Inputs `examples` (any splits) and optionally the `schema` they follow; outputs
    `examples` (same splits, embeddings added) and `schema` (the input schema, or an empty
    one, plus the two embedding features).

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
                },
            )
        )
