"""Transform and Trainer with an extra `taxonomy` input channel.

Each is built from the standard component's own constructor (so every standard option
keeps working), then re-specified with the taxonomy input added and a thin executor that
hands the taxonomy to the user functions.
"""
from __future__ import annotations

from typing import Any

from tfx.components import Trainer, Transform
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs
from tfx.types.channel import BaseChannel, Channel
from tfx.types.component_spec import ChannelParameter

from components.artifacts import CategoryTaxonomy
from components.taxonomy_aware import executor


def _with_taxonomy(spec_cls: type) -> type:
    return type(
        f"Taxonomy{spec_cls.__name__}",
        (spec_cls,),
        {"INPUTS": {**spec_cls.INPUTS, executor.TAXONOMY_KEY: ChannelParameter(type=CategoryTaxonomy)}},
    )


TaxonomyTransformSpec = _with_taxonomy(standard_component_specs.TransformSpec)
TaxonomyTrainerSpec = _with_taxonomy(standard_component_specs.TrainerSpec)


def _respec(component: Any, spec_cls: type, taxonomy: BaseChannel) -> Any:
    base = component.spec
    # Fresh output channels: the plain component's are bound to its own (unused) node id.
    outputs = {}
    for key, channel in base.outputs.items():
        fresh = Channel(type=channel.type)
        fresh.matching_channel_name = getattr(channel, "matching_channel_name", None)
        outputs[key] = fresh
    kwargs = {**base.exec_properties, **base.inputs, **outputs, executor.TAXONOMY_KEY: taxonomy}
    return spec_cls(**{k: v for k, v in kwargs.items() if v is not None})


class TaxonomyTransform(Transform):
    SPEC_CLASS = TaxonomyTransformSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.TransformExecutor)

    def __init__(self, taxonomy: BaseChannel, **kwargs: Any):
        plain = Transform(**kwargs)
        super(Transform, self).__init__(spec=_respec(plain, TaxonomyTransformSpec, taxonomy))


class TaxonomyTrainer(Trainer):
    SPEC_CLASS = TaxonomyTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.TrainerExecutor)

    def __init__(self, taxonomy: BaseChannel, **kwargs: Any):
        plain = Trainer(**kwargs)
        super(Trainer, self).__init__(spec=_respec(plain, TaxonomyTrainerSpec, taxonomy))
