"""Picks the tf.distribute strategy from the environment, before any other TF op runs.

TF_CONFIG with more than one task -> MultiWorkerMirroredStrategy (the same code path on a
cluster and with `--train-workers N` on one machine); several local GPUs ->
MirroredStrategy; otherwise the default strategy.
"""
from __future__ import annotations

import json
import os
from typing import Any


def cluster_from_env() -> dict[str, Any]:
    raw = os.environ.get("TF_CONFIG")
    return json.loads(raw) if raw else {}


def num_workers(tf_config: dict[str, Any] | None = None) -> int:
    cluster = (tf_config if tf_config is not None else cluster_from_env()).get("cluster", {})
    return sum(len(cluster.get(role, [])) for role in ("chief", "master", "worker"))


def is_chief(tf_config: dict[str, Any] | None = None) -> bool:
    """The chief is `chief`/`master`, or worker 0 when the cluster has no chief."""
    config = tf_config if tf_config is not None else cluster_from_env()
    task = config.get("task", {})
    role, index = task.get("type"), int(task.get("index", 0))
    if not role:
        return True
    if role in ("chief", "master"):
        return True
    cluster = config.get("cluster", {})
    return role == "worker" and index == 0 and not cluster.get("chief") and not cluster.get("master")


def make_strategy():
    import tensorflow as tf

    if num_workers() > 1:
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
