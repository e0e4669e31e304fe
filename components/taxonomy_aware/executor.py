"""Executors for the standard Transform and Trainer that also read the taxonomy artifact.

TFX passes custom artifacts to neither component, so these thin subclasses put the
taxonomy's location into `custom_config`, where preprocessing_fn and run_fn read it.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List

from tfx.components.trainer import executor as trainer_executor
from tfx.components.transform import executor as transform_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils

TAXONOMY_KEY = "taxonomy"
TAXONOMY_URI_CONFIG = "taxonomy_uri"


def inject_taxonomy(
    input_dict: Dict[str, List[Any]], exec_properties: Dict[str, Any]
) -> tuple[Dict[str, List[Any]], Dict[str, Any]]:
    """Moves the taxonomy input into custom_config['taxonomy_uri']."""
    input_dict = dict(input_dict)
    taxonomy = artifact_utils.get_single_instance(input_dict.pop(TAXONOMY_KEY))
    exec_properties = dict(exec_properties)
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    config = json_utils.loads(raw) if raw else {}
    config = dict(config or {})
    config[TAXONOMY_URI_CONFIG] = taxonomy.uri
    exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY] = json_utils.dumps(config)
    return input_dict, exec_properties


class TransformExecutor(transform_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_dict, exec_properties = inject_taxonomy(input_dict, exec_properties)
        super().Do(input_dict, output_dict, exec_properties)


class TrainerExecutor(trainer_executor.GenericExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        input_dict, exec_properties = inject_taxonomy(input_dict, exec_properties)
        super().Do(input_dict, output_dict, exec_properties)


def taxonomy_uri(custom_config: Dict[str, Any] | str | None) -> str:
    if isinstance(custom_config, str):
        custom_config = json.loads(custom_config)
    if not custom_config or TAXONOMY_URI_CONFIG not in custom_config:
        raise ValueError("custom_config has no taxonomy_uri: run through the taxonomy-aware components")
    return custom_config[TAXONOMY_URI_CONFIG]
