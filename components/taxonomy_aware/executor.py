"""Executors for the standard Transform and Trainer that also read the taxonomy artifact.

TFX passes custom artifacts to neither component, so these thin subclasses put the
taxonomy's location into `custom_config`, where preprocessing_fn and run_fn read it.
`ReplicaTrainerExecutor` is what each replica of a multi-worker training runs.
"""
from __future__ import annotations

from typing import Any, Dict, List

from absl import logging
from tfx.components.trainer import executor as trainer_executor
from tfx.components.transform import executor as transform_executor
from tfx.components.util import udf_utils
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils

from schema.encoders.word_mapper import URI_CONFIG as WORD_MAPPER_URI_CONFIG
from schema.taxonomy import TAXONOMY_URI_CONFIG

TAXONOMY_KEY = "taxonomy"
WORD_MAPPER_KEY = "word_mapper"


def inject_taxonomy(
    input_dict: Dict[str, List[Any]], exec_properties: Dict[str, Any]
) -> tuple[Dict[str, List[Any]], Dict[str, Any]]:
    """Moves the taxonomy input into custom_config['taxonomy_uri'] (and a word mapper
    input, when there is one, into custom_config['word_mapper_uri'])."""
    input_dict = dict(input_dict)
    taxonomy = artifact_utils.get_single_instance(input_dict.pop(TAXONOMY_KEY))
    word_mappers = input_dict.pop(WORD_MAPPER_KEY, None)
    exec_properties = dict(exec_properties)
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    config = json_utils.loads(raw) if raw else {}
    config = dict(config or {})
    config[TAXONOMY_URI_CONFIG] = taxonomy.uri
    if word_mappers:
        config[WORD_MAPPER_URI_CONFIG] = artifact_utils.get_single_instance(word_mappers).uri
    exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY] = json_utils.dumps(config)
    return input_dict, exec_properties


class TransformExecutor(transform_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_dict, exec_properties = inject_taxonomy(input_dict, exec_properties)
        super().Do(input_dict, output_dict, exec_properties)


class ReplicaTrainerExecutor(trainer_executor.GenericExecutor):
    """What every replica of a training cluster runs: a Vertex AI CustomJob's replicas, a
    TFJob's pods, the processes of `--train-workers N` (the taxonomy is already in
    custom_config).

    run_fn trains on every replica in lockstep, and only the chief writes the serving model
    (non-chief replicas save to scratch, trainer/run.py). So only the chief is held to
    TFX's check that the model exists; a non-chief replica returns normally after training
    (a replica that exits non-zero is restarted by Vertex AI, and fails a TFJob) and
    writes nothing into the outputs. Roles come from trainer/distribution.py, which reads
    TF_CONFIG or Vertex AI's CLUSTER_SPEC.
    """

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        from trainer import distribution

        cluster = distribution.cluster_from_env()
        role, index = distribution.task_role(cluster)
        if role in ("ps", "evaluator"):
            raise ValueError(
                f"this replica's task is {role} {index}, but training uses MultiWorkerMirroredStrategy, "
                "which has a chief and workers only: give the training job worker pools 0 and 1 only")
        if distribution.is_chief(cluster):
            super().Do(input_dict, output_dict, exec_properties)
            return
        self._log_startup(input_dict, output_dict, exec_properties)
        fn_args = self._GetFnArgs(input_dict, output_dict, exec_properties)
        udf_utils.get_fn(exec_properties, "run_fn")(fn_args)
        logging.info("%s %d of %d training tasks finished; the chief writes the model",
                     role, index, distribution.num_workers(cluster))


class TrainerExecutor(ReplicaTrainerExecutor):
    """The TaxonomyTrainer's executor in a pipeline step; with `local_train_workers` N > 1
    (and no cluster around it) it runs N replicas on this machine."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        from trainer import distribution, local_cluster

        input_dict, exec_properties = inject_taxonomy(input_dict, exec_properties)
        raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
        config = dict(json_utils.loads(raw) or {}) if raw else {}
        workers = int(config.get(local_cluster.LOCAL_WORKERS_CONFIG, 1) or 1)
        if workers > 1 and not distribution.cluster_from_env():
            # Data-parallel on this machine: N replica processes, one TF_CONFIG each.
            config[local_cluster.LOCAL_WORKERS_CONFIG] = 1
            child_properties = dict(exec_properties)
            child_properties[standard_component_specs.CUSTOM_CONFIG_KEY] = json_utils.dumps(config)
            local_cluster.run_workers(f"{__name__}.{ReplicaTrainerExecutor.__name__}", input_dict, output_dict,
                                      child_properties, workers)
            return
        super().Do(input_dict, output_dict, exec_properties)

