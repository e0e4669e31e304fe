"""Points the candidate Trainer of a built pipeline at Vertex AI Training.

Only the candidate (`TaxonomyTrainer`) trains as an N-replica Vertex AI CustomJob; the
bag-of-words BaselineTrainer is small and trains inside its own pipeline step, on one
replica. TaxonomyTrainer builds its own spec from the standard Trainer's arguments, so
the cluster executor and its custom_config are set on the built node.
"""
from __future__ import annotations

from typing import Any, Mapping

CANDIDATE_TRAINER_ID = "TaxonomyTrainer"


def use_vertex_training(tfx_pipeline, training_config: Mapping[str, Any]) -> list[str]:
    """Sets the Vertex executor and `training_config` on the candidate Trainer; returns its id."""
    from tfx.dsl.components.base import executor_spec
    from tfx.types import standard_component_specs
    from tfx.utils import json_utils

    from kubeflow.trainer_executor import VertexTaxonomyTrainerExecutor

    key = standard_component_specs.CUSTOM_CONFIG_KEY
    ids = []
    for node in tfx_pipeline.components:
        if node.id != CANDIDATE_TRAINER_ID:
            continue
        raw = node.exec_properties.get(key)
        custom_config = dict(json_utils.loads(raw) if raw else {})
        custom_config.update(training_config)
        node.exec_properties[key] = json_utils.dumps(custom_config)
        node.executor_spec = executor_spec.ExecutorClassSpec(VertexTaxonomyTrainerExecutor)
        ids.append(node.id)
    if not ids:
        raise ValueError(f"the pipeline has no {CANDIDATE_TRAINER_ID} to train on Vertex AI")
    return ids
