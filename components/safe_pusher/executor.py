"""SafePusher executor: the standard Pusher's contract around the push logic of `push.py`.

TFX glue only: it reads the artifacts and exec properties into plain values and hands
them to `push.py` (infra check, model card, atomic versioned push), then records the
outcome as the standard Pusher does.

1. Not blessed: exactly the standard pusher (`pushed` = 0).
2. Infra check failed: not pushed, `pushed` = 0 and `infra_check` = the reason.
3. Otherwise the model and its model card are pushed to `<base>/<version>` and archived in
   the PushedModel artifact; `pushed*`, `infra_check` and `model_card` are set.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.safe_pusher import model_card, push
from schema import serving_layout

EXAMPLES_KEY = "examples"
EVALUATION_KEY = "evaluation"
SMOKE_ROWS_KEY = "smoke_rows"
KEEP_VERSIONS_KEY = "keep_versions"
DEFAULT_SMOKE_ROWS = push.DEFAULT_SMOKE_ROWS
EVAL_SPLIT = "eval"

# Custom properties on the PushedModel artifact (besides the standard pusher's
# `pushed`, `pushed_destination` and `pushed_version`).
INFRA_CHECK_PROPERTY = "infra_check"
MODEL_CARD_PROPERTY = "model_card"


def read_eval_rows(examples: List[types.Artifact], limit: int) -> list[bytes]:
    """Up to `limit` serialized raw tf.Examples of the eval split."""
    import tensorflow as tf

    from schema.examples import split_files

    try:
        files = split_files(artifact_utils.get_split_uri(examples, EVAL_SPLIT))
    except FileNotFoundError:
        return []
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(limit)
    return [record.numpy() for record in dataset]


def base_directory(exec_properties: Dict[str, Any]) -> str:
    """The filesystem base directory of the push destination (as the standard Pusher checks it)."""
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
    kind = destination.WhichOneof("destination")
    if kind != "filesystem":
        raise NotImplementedError(f"Invalid push destination {kind}")
    versioning = destination.filesystem.versioning
    if versioning not in (pusher_pb2.Versioning.AUTO, pusher_pb2.Versioning.UNIX_TIMESTAMP):
        raise NotImplementedError(f"Invalid Versioning {versioning}")
    return destination.filesystem.base_directory


def _int_property(exec_properties: Dict[str, Any], key: str, default: int) -> int:
    value = exec_properties.get(key)
    return default if value is None else int(value)


def _blessed(input_dict: Dict[str, List[types.Artifact]]) -> Optional[bool]:
    blessings = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY) or []
    return artifact_utils.get_single_instance(blessings).get_int_custom_property("blessed") == 1 if blessings else None


class Executor(pusher_executor.Executor):
    """The standard pusher's contract (blessing check, `pushed*` properties, archive copy
    in the PushedModel uri), with the infra check, atomic push and model card added."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            model_push.set_string_custom_property(INFRA_CHECK_PROPERTY, "not run: the model is not blessed")
            return
        model_path = self.GetModelPath(input_dict)
        base = base_directory(exec_properties)

        examples = input_dict.get(EXAMPLES_KEY) or []
        taxonomy = serving_layout.read_asset(model_path, serving_layout.ASSETS_TAXONOMY)
        infra = push.infra_check(model_path, taxonomy,
                                 (lambda limit: read_eval_rows(examples, limit)) if examples else None,
                                 _int_property(exec_properties, SMOKE_ROWS_KEY, DEFAULT_SMOKE_ROWS))
        model_push.set_string_custom_property(INFRA_CHECK_PROPERTY, infra.describe())
        if infra.failed:
            logging.error("SafePusher: NOT pushing %s: the infra check failed: %s", model_path, infra.detail)
            self._MarkNotPushed(model_push)
            return
        logging.info("SafePusher: infra check %s", infra.describe())

        evaluations = input_dict.get(EVALUATION_KEY) or []
        evaluation_uri = artifact_utils.get_single_instance(evaluations).uri if evaluations else None
        card = push.model_card_for(model_path, taxonomy, infra, evaluation_uri, _blessed(input_dict))
        keep = _int_property(exec_properties, KEEP_VERSIONS_KEY, serving_layout.DEFAULT_KEEP_VERSIONS)
        version, serving_path = push.push_model(model_path, base, push.card_files(card), keep_versions=keep)
        logging.info("SafePusher: model written to serving path %s", serving_path)

        # Archive copy in the PushedModel artifact, as the standard pusher does (with the card).
        io_utils.copy_dir(serving_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)
        model_push.set_string_custom_property(MODEL_CARD_PROPERTY, os.path.join(serving_path, model_card.CARD_MD))
        logging.info("SafePusher: model pushed to %s (archived in %s)", serving_path, model_push.uri)
