"""TaxonomyGen: the category tree as an artifact, built from the training split only."""
from __future__ import annotations

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.channel import BaseChannel, Channel
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.artifacts import CategoryTaxonomy
from components.taxonomy_gen import executor


class TaxonomyGenSpec(ComponentSpec):
    PARAMETERS = {
        executor.MAX_DEPTH_KEY: ExecutionParameter(type=int),
        executor.MIN_COUNT_KEY: ExecutionParameter(type=int),
        executor.SPLIT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {executor.TAXONOMY_KEY: ChannelParameter(type=CategoryTaxonomy)}


class TaxonomyGen(base_beam_component.BaseBeamComponent):
    SPEC_CLASS = TaxonomyGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples: BaseChannel, max_depth: int, min_count: int, split: str = "train"):
        super().__init__(
            spec=TaxonomyGenSpec(
                examples=examples,
                max_depth=max_depth,
                min_count=min_count,
                split=split,
                taxonomy=Channel(type=CategoryTaxonomy),
            )
        )
