"""Trainer executors for a cluster.

`VertexTaxonomyTrainerExecutor` runs in the pipeline's Trainer step (on Vertex AI
Pipelines or KFP) and launches the training itself as a Vertex AI CustomJob whose worker
pools come from `custom_config['ai_platform_training_args']` (kubeflow/settings.py): pool 0 is
the chief (1 replica), pool 1 the other N-1 workers, all on the pipeline image. Vertex AI
sets TF_CONFIG on every replica, so run_fn picks MultiWorkerMirroredStrategy
(trainer/distribution.py) and only the chief exports the model.

The taxonomy input is moved into custom_config (`taxonomy_uri`) *before* the job is
launched, so every replica runs the stock `tfx.components.trainer.executor.GenericExecutor`
through `python -m tfx.scripts.run_executor` and run_fn reads the taxonomy as it does
locally.
"""
from __future__ import annotations

from tfx.components.trainer import executor as trainer_executor
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from components.taxonomy_aware.executor import inject_taxonomy


class VertexTaxonomyTrainerExecutor(vertex_executor.GenericExecutor):
    """TaxonomyTrainer on Vertex AI Training (distributed when the job has several replicas)."""

    def _GetExecutorClass(self):
        # What each replica runs. The taxonomy is already in custom_config, so the plain
        # generic executor is enough (the taxonomy-aware one would look for the input).
        return trainer_executor.GenericExecutor

    def Do(self, input_dict, output_dict, exec_properties):
        input_dict, exec_properties = inject_taxonomy(input_dict, exec_properties)
        return super().Do(input_dict, output_dict, exec_properties)
