"""Transform and Trainer with an extra `taxonomy` input channel (and the Trainer an
optional `word_mapper`, the Embedder's fitted word mapper, which it exports with the model).

Each is built from the standard component's own constructor (so every standard option
keeps working), then re-specified with the taxonomy input added (schema/compat.py, which
checks the TFX release) and a thin executor that hands the taxonomy to the user functions.
"""
from __future__ import annotations

from typing import Any, Optional

from tfx.components import Trainer, Transform
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.types.channel import BaseChannel
from tfx.types.component_spec import ChannelParameter

from components.artifacts import CategoryTaxonomy, WordMapperArtifact
from components.taxonomy_aware import executor
from schema import compat


def _with_taxonomy(spec_cls: type) -> type:
    return type(
        f"Taxonomy{spec_cls.__name__}",
        (spec_cls,),
        {"INPUTS": {**spec_cls.INPUTS, executor.TAXONOMY_KEY: ChannelParameter(type=CategoryTaxonomy)}},
    )


TaxonomyTransformSpec = _with_taxonomy(standard_component_specs.TransformSpec)
TaxonomyTrainerSpec = type(
    "TaxonomyTrainerSpec",
    (_with_taxonomy(standard_component_specs.TrainerSpec),),
    {"INPUTS": {**_with_taxonomy(standard_component_specs.TrainerSpec).INPUTS,
                executor.WORD_MAPPER_KEY: ChannelParameter(type=WordMapperArtifact, optional=True)}},
)


class TaxonomyTransform(Transform):
    SPEC_CLASS = TaxonomyTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.TransformExecutor)

    def __init__(self, taxonomy: BaseChannel, **kwargs: Any):
        spec = compat.respecified(Transform(**kwargs), TaxonomyTransformSpec, {executor.TAXONOMY_KEY: taxonomy})
        compat.init_with_spec(self, Transform, spec)


class TaxonomyTrainer(Trainer):
    SPEC_CLASS = TaxonomyTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.TrainerExecutor)

    def __init__(self, taxonomy: BaseChannel, word_mapper: Optional[BaseChannel] = None, **kwargs: Any):
        """`word_mapper`: the Embedder's fitted word mapper, exported with the model."""
        spec = compat.respecified(Trainer(**kwargs), TaxonomyTrainerSpec,
                                  {executor.TAXONOMY_KEY: taxonomy, executor.WORD_MAPPER_KEY: word_mapper})
        compat.init_with_spec(self, Trainer, spec)
