"""Which pipeline node trains on Vertex AI Training: the candidate TaxonomyTrainer only.

The candidate model is what `--train-workers N` is for. The baseline (`BagOfWordsTrainer`,
the linear bag-of-words model) trains inside its own pipeline step on one machine: it is
small, and an N-replica CustomJob for it would hold N machines and a job start-up for it.
"""
from __future__ import annotations

from typing import Any, Mapping

CANDIDATE_TRAINER_ID = "TaxonomyTrainer"


def use_vertex_training(tfx_pipeline, training_config: Mapping[str, Any]) -> str:
    """Points the candidate Trainer of `tfx_pipeline` at Vertex AI Training; returns its id.

    `training_config` holds the custom_config entries TFX's Vertex AI training extension
    reads (`ai_platform_enable_vertex`, `ai_platform_vertex_region`,
    `ai_platform_training_args` with the worker pools). TaxonomyTrainer builds its spec
    from the standard Trainer's arguments, so they and the executor are set on the built
    node. Every other node, BagOfWordsTrainer included, is left as it is.
    """
    from tfx.dsl.components.base import executor_spec
    from tfx.types import standard_component_specs
    from tfx.utils import json_utils

    from components.taxonomy_aware.component import TaxonomyTrainer
    from kubeflow.trainer_executor import VertexTaxonomyTrainerExecutor

    node = next((n for n in tfx_pipeline.components if n.id == CANDIDATE_TRAINER_ID), None)
    if not isinstance(node, TaxonomyTrainer):
        found = "no such node" if node is None else f"a {type(node).__name__}"
        raise ValueError(f"the pipeline's candidate trainer {CANDIDATE_TRAINER_ID!r} is {found}, "
                         "expected a TaxonomyTrainer")
    key = standard_component_specs.CUSTOM_CONFIG_KEY
    raw = node.exec_properties.get(key)
    custom_config = dict(json_utils.loads(raw) if raw else {})
    custom_config.update(training_config)
    node.exec_properties[key] = json_utils.dumps(custom_config)
    node.executor_spec = executor_spec.ExecutorClassSpec(VertexTaxonomyTrainerExecutor)
    return node.id
