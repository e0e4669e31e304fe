"""BaselineSelector executor: the latest blessed model, or this run's bag-of-words model.

TFMA compares a candidate with exactly one baseline. After the first push that is the
model in production (latest blessed); before it, a linear bag-of-words model trained in
the same run, so even the first push has to beat something real.
"""
from __future__ import annotations

from typing import Any, Dict, List

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

BLESSED_KEY = "blessed_model"
FALLBACK_KEY = "fallback_model"
BASELINE_KEY = "baseline"

SOURCE_BLESSED = "latest_blessed"
SOURCE_FALLBACK = "bag_of_words"


def choose(input_dict: Dict[str, List[Any]]) -> tuple[Any, str]:
    blessed = input_dict.get(BLESSED_KEY) or []
    if blessed:
        return max(blessed, key=lambda a: a.id), SOURCE_BLESSED
    return artifact_utils.get_single_instance(input_dict[FALLBACK_KEY]), SOURCE_FALLBACK


class Executor(base_executor.BaseExecutor):
    """A plain Python executor (no Beam): copying one SavedModel is all it does."""

    def Do(self, input_dict: Dict[str, List[Any]], output_dict: Dict[str, List[Any]],
           exec_properties: Dict[str, Any]) -> None:
        chosen, source = choose(input_dict)
        output = artifact_utils.get_single_instance(output_dict[BASELINE_KEY])
        src = path_utils.serving_model_path(chosen.uri, path_utils.is_old_model_artifact(chosen))
        dst = path_utils.serving_model_dir(output.uri)
        fileio.makedirs(output.uri)
        io_utils.copy_dir(src, dst)
        output.set_string_custom_property("baseline_source", source)
        output.set_string_custom_property("source_uri", chosen.uri)
        output.set_int_custom_property("source_artifact_id", int(chosen.id or 0))
        logging.info("baseline for evaluation: %s model %s", source, chosen.uri)
