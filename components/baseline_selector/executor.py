"""BaselineSelector executor: the model in production, or this run's bag-of-words model.

TFMA compares a candidate with exactly one baseline. After the first push that is the
model in production: the latest blessed model (from a TFX resolver, where the
orchestrator runs one) or, on open-source Kubeflow Pipelines, the newest complete version
under the serving dir (`pushed_models_dir`). Before any push it is a linear bag-of-words
model trained in the same run, so even the first push has to beat something real.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from schema import serving_layout

BLESSED_KEY = "blessed_model"
FALLBACK_KEY = "fallback_model"
BASELINE_KEY = "baseline"
PUSHED_MODELS_DIR_KEY = "pushed_models_dir"

SOURCE_BLESSED = "latest_blessed"
SOURCE_PUSHED = "latest_pushed"
SOURCE_FALLBACK = "bag_of_words"


class Choice(NamedTuple):
    serving_path: str  # the SavedModel folder to copy
    source: str  # SOURCE_*
    source_uri: str  # the Model artifact's URI, or the pushed version's folder
    artifact_id: int  # the Model artifact's id; 0 for a pushed version


def choose(input_dict: Dict[str, List[Any]], pushed_models_dir: str = "") -> Choice:
    """The baseline: latest blessed, else newest pushed (when a dir is given), else fallback."""
    blessed = input_dict.get(BLESSED_KEY) or []
    if blessed:
        return _of_artifact(max(blessed, key=lambda a: a.id), SOURCE_BLESSED)
    if pushed_models_dir:
        pushed, broken = serving_layout.newest_complete(pushed_models_dir)
        for folder, why in broken:
            logging.warning("pushed version %s is not complete and is not the incumbent: %s", folder, why)
        if pushed is not None:
            return Choice(str(pushed), SOURCE_PUSHED, str(pushed), 0)
    return _of_artifact(artifact_utils.get_single_instance(input_dict[FALLBACK_KEY]), SOURCE_FALLBACK)


def _of_artifact(model: Any, source: str) -> Choice:
    path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    return Choice(path, source, model.uri, int(model.id or 0))


class Executor(base_executor.BaseExecutor):
    """A plain Python executor (no Beam): copying one SavedModel is all it does."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        choice = choose(input_dict, exec_properties.get(PUSHED_MODELS_DIR_KEY) or "")
        output = artifact_utils.get_single_instance(output_dict[BASELINE_KEY])
        fileio.makedirs(output.uri)
        io_utils.copy_dir(choice.serving_path, path_utils.serving_model_dir(output.uri))
        output.set_string_custom_property("baseline_source", choice.source)
        output.set_string_custom_property("source_uri", choice.source_uri)
        output.set_int_custom_property("source_artifact_id", choice.artifact_id)
        logging.info("baseline for evaluation: %s model %s", choice.source, choice.source_uri)
