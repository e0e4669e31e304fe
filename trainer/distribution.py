"""Picks the tf.distribute strategy from the environment, before any other TF op runs.

The cluster comes from TF_CONFIG (what TensorFlow reads; Vertex AI, a TFJob and
`--train-workers N` set it), or else from Vertex AI's CLUSTER_SPEC, whose worker pools
`workerpool0..3` are the chief, the workers, the parameter servers and the evaluators.
Vertex AI sets CLUSTER_SPEC on every replica and TF_CONFIG on the replicas of a
multi-replica job; reading both means a replica never mistakes itself for the chief (and
writes the chief's model) when only CLUSTER_SPEC is there.

Several training tasks -> MultiWorkerMirroredStrategy (the same code path on a cluster and
on one machine); several local GPUs -> MirroredStrategy; otherwise the default strategy.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

# Vertex AI's worker pool i plays this TF_CONFIG role (an evaluator is a task outside the
# TF cluster, as in the TF_CONFIG Vertex AI writes).
VERTEX_POOL_ROLES = ("chief", "worker", "ps", "evaluator")
TRAINING_ROLES = ("chief", "master", "worker")


def tf_config_from_cluster_spec(cluster_spec: Mapping[str, Any]) -> dict[str, Any]:
    """Vertex AI's CLUSTER_SPEC (`workerpool<i>` pools and task) in TF_CONFIG's form."""
    pools = cluster_spec.get("cluster", {}) or {}
    cluster = {}
    for i, role in enumerate(VERTEX_POOL_ROLES):
        hosts = pools.get(f"workerpool{i}")
        if hosts and role != "evaluator":
            cluster[role] = list(hosts)
    unknown = sorted(set(pools) - {f"workerpool{i}" for i in range(len(VERTEX_POOL_ROLES))})
    if unknown:
        raise ValueError(f"CLUSTER_SPEC names worker pools {unknown}; Vertex AI has workerpool0..3")
    task = cluster_spec.get("task", {}) or {}
    pool = str(task.get("type", ""))
    if not pool:
        return {"cluster": cluster}
    number = pool[len("workerpool"):]
    if not (pool.startswith("workerpool") and number.isdigit() and int(number) < len(VERTEX_POOL_ROLES)):
        raise ValueError(f"CLUSTER_SPEC task type {pool!r} is not one of workerpool0..3")
    return {"cluster": cluster, "task": {"type": VERTEX_POOL_ROLES[int(number)], "index": int(task.get("index", 0))}}


def cluster_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """This process's cluster in TF_CONFIG's form: TF_CONFIG, else CLUSTER_SPEC, else {}."""
    environ = os.environ if environ is None else environ
    raw = environ.get("TF_CONFIG")
    if raw:
        return json.loads(raw)
    raw = environ.get("CLUSTER_SPEC")
    return tf_config_from_cluster_spec(json.loads(raw)) if raw else {}


def num_workers(tf_config: dict[str, Any] | None = None) -> int:
    """Training tasks in the cluster (chief and workers; parameter servers and evaluators
    do not train a MultiWorkerMirroredStrategy replica)."""
    cluster = (tf_config if tf_config is not None else cluster_from_env()).get("cluster", {})
    return sum(len(cluster.get(role, [])) for role in TRAINING_ROLES)


def task_role(tf_config: dict[str, Any] | None = None) -> tuple[str, int]:
    """(type, index) of this process's task; ("", 0) outside a cluster."""
    task = (tf_config if tf_config is not None else cluster_from_env()).get("task", {}) or {}
    return str(task.get("type") or ""), int(task.get("index", 0))


def is_chief(tf_config: dict[str, Any] | None = None) -> bool:
    """The chief is `chief`/`master`, or worker 0 when the cluster has no chief."""
    config = tf_config if tf_config is not None else cluster_from_env()
    role, index = task_role(config)
    if not role:
        return True
    if role in ("chief", "master"):
        return True
    cluster = config.get("cluster", {})
    return role == "worker" and index == 0 and not cluster.get("chief") and not cluster.get("master")


def export_tf_config(environ: dict[str, str] | None = None) -> None:
    """Writes the cluster read from CLUSTER_SPEC to TF_CONFIG when only CLUSTER_SPEC is set,
    so that TensorFlow's own cluster resolver sees the cluster this module sees."""
    environ = os.environ if environ is None else environ
    if not environ.get("TF_CONFIG") and environ.get("CLUSTER_SPEC"):
        config = cluster_from_env(environ)
        if num_workers(config) > 1:
            environ["TF_CONFIG"] = json.dumps(config)


def make_strategy():
    export_tf_config()
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
