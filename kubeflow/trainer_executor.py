"""The TaxonomyTrainer's executor on a cluster: training as a Vertex AI CustomJob.

`VertexTaxonomyTrainerExecutor` runs in the pipeline's Trainer step (on Vertex AI
Pipelines or KFP) and launches the training itself as a Vertex AI CustomJob whose worker
pools come from `custom_config['ai_platform_training_args']` (kubeflow/settings.py): pool 0 is the chief (1
replica), pool 1 the other N-1 workers, all on the pipeline image. TFX's extension gives
every replica the same command, `python -m tfx.scripts.run_executor --executor_class_path
<_GetExecutorClass()> --inputs ... --outputs ... --exec-properties ...`, and Vertex AI
sets TF_CONFIG and CLUSTER_SPEC on each, so run_fn trains with MultiWorkerMirroredStrategy
(trainer/distribution.py).

The taxonomy input is moved into custom_config (`taxonomy_uri`) *before* the job is
launched, so the replicas run `ReplicaTrainerExecutor`, which needs no taxonomy input:
run_fn on every replica, the model written and checked on the chief only, and the other
replicas exiting 0 after training (Vertex AI restarts a replica that fails).
"""
from __future__ import annotations

from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from components.taxonomy_aware.executor import ReplicaTrainerExecutor, inject_taxonomy
from schema import compat


@compat.vertex_executor_class_hook
class VertexTaxonomyTrainerExecutor(vertex_executor.GenericExecutor):
    """TaxonomyTrainer on Vertex AI Training (distributed when the job has several replicas)."""

    def _GetExecutorClass(self):
        return ReplicaTrainerExecutor

    def Do(self, input_dict, output_dict, exec_properties):
        input_dict, exec_properties = inject_taxonomy(input_dict, exec_properties)
        return super().Do(input_dict, output_dict, exec_properties)
