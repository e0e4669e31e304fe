"""Compiles the pipeline for Vertex AI Pipelines or open-source Kubeflow Pipelines 2.x.

`compile_pipeline` compiles the very pipeline that `pipeline.py run` runs locally
(`pipeline_definition.create_pipeline(config)`) with TFX's KubeflowV2DagRunner into a
`PipelineJob` JSON (its `pipelineSpec` is a KFP `PipelineSpec`). What changes on a cluster:

- every executor runs in one container image (kubeflow/Dockerfile), referenced by digest
  or git-SHA tag so that a cached step never hides an image change; paths into the
  project (the curated schema) are rewritten to where that image holds the code;
- Beam components get Dataflow arguments through `PipelineConfig.beam_args`;
- on Vertex AI, the candidate Trainer launches a Vertex AI CustomJob with N replicas
  (kubeflow/trainer_executor.py); the bag-of-words BagOfWordsTrainer trains in its own step;
- the project's custom artifact types get an importable KFP schema title (schema/compat.py).

The two targets differ where the backends differ:

| | vertex | kfp (open-source KFP 2.x) |
|---|---|---|
| pipeline spec | 2.0 (legacy `parameters`) | 2.1 (`parameterValues`; its driver takes only these) |
| incumbent the candidate must beat | latest blessed model (TFX resolver) | newest complete pushed version (KFP runs no resolver) |
| catalog fingerprint in the ExampleGen cache key | pre-cache-check driver (Vertex runs it) | pipeline parameter `catalog_fingerprint`, set by `submit` |
| BaselineSelector | cached on its inputs (the resolver's answer is one) | never cached (it reads the serving dir) |
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from kubeflow.settings import (ENV_VARS, PROJECT_ROOT, TARGET_KFP, TARGET_VERTEX, KubeflowSettings,
                               is_immutable_image)

# The pre-cache-check command TFX compiles for a file-based ExampleGen, and ours, whose
# fingerprint covers the photos as well as the CSV.
TFX_EXAMPLE_GEN_DRIVER = "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"
CATALOG_DRIVER = "components.catalog_example_gen.driver"
TARGET_LABEL = "categorize-target"
# On KFP the incumbent is looked up in the serving dir, which is no input artifact: a cached
# BaselineSelector would keep comparing with the version it saw first.
KFP_UNCACHED_TASKS = ("BaselineSelector",)


class ImageError(ValueError):
    """The image reference could change under a cached step."""


def cluster_pipeline_config(spec: str, settings: KubeflowSettings, **kwargs: Any):
    """A PipelineConfig whose catalog, pipeline root and serving dir are cluster URIs."""
    from schema.catalog_spec import load_spec
    from schema.config import PipelineConfig

    catalog_spec = load_spec(spec)
    return on_cluster(
        PipelineConfig(
            catalog_dir=settings.catalog_for(catalog_spec.name),
            spec=catalog_spec,
            pipeline_root=settings.pipeline_root_for(catalog_spec.name),
            serving_dir=settings.serving_root(),
            **kwargs,
        ),
        settings,
    )


def cluster_config_from_args(
    args: argparse.Namespace, settings: KubeflowSettings, config_from_args: Callable[[argparse.Namespace], Any]
):
    """The config `pipeline.py run` would build from the same flags, moved to the cluster.

    `config_from_args` is the command line's own flag-to-PipelineConfig function, so every
    model and gating flag of `run` means the same for `compile` and `submit`; only the
    locations (catalog, pipeline root, serving dir) become cluster URIs.
    """
    from schema.catalog_spec import load_spec

    spec_name = load_spec(args.spec).name
    catalog = settings.catalog_for(spec_name)
    local_args = argparse.Namespace(**{**vars(args), "catalog": catalog})  # never the local demo fallback
    return on_cluster(
        dataclasses.replace(
            config_from_args(local_args),
            catalog_dir=catalog,
            pipeline_root=settings.pipeline_root_for(spec_name),
            serving_dir=settings.serving_root(),
        ),
        settings,
    )


def on_cluster(config, settings: KubeflowSettings):
    """A copy of `config` with the cluster's Beam args, workers and incumbent source."""
    from schema.config import INCUMBENT_LATEST_BLESSED, INCUMBENT_LATEST_PUSHED

    incumbent = INCUMBENT_LATEST_PUSHED if settings.target == TARGET_KFP else INCUMBENT_LATEST_BLESSED
    return dataclasses.replace(
        config, beam_args=tuple(settings.beam_pipeline_args()), train_workers=settings.train_workers,
        incumbent_source=incumbent,
    )


def catalog_fingerprint_parameter(tfx_pipeline) -> None:
    """KFP target: the ExampleGen takes the catalog fingerprint from a pipeline parameter."""
    from tfx.orchestration import data_types

    from components.catalog_example_gen.component import CatalogExampleGen
    from components.catalog_example_gen.fingerprint import CATALOG_FINGERPRINT_KEY

    for node in tfx_pipeline.components:
        if isinstance(node, CatalogExampleGen):
            node.exec_properties[CATALOG_FINGERPRINT_KEY] = data_types.RuntimeParameter(
                name=CATALOG_FINGERPRINT_KEY, ptype=str, default="")


def kfp_artifact_title(artifact_type: type) -> Optional[str]:
    """The KFP schema title for one of the project's custom artifact types, else None."""
    import kubeflow

    name = artifact_type.__name__
    if name in kubeflow.ARTIFACT_TYPES and getattr(kubeflow, name) is artifact_type:
        return f"kubeflow.{name}"
    return None


def _rewrite(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_rewrite(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _rewrite(v, old, new) for k, v in value.items()}
    return value


def _use_catalog_driver(job: dict) -> None:
    """Points the ExampleGen's pre-cache check at the driver that fingerprints photos too."""
    for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
        hook = executor.get("container", {}).get("lifecycle", {}).get("preCacheCheck")
        if hook and TFX_EXAMPLE_GEN_DRIVER in hook.get("command", []):
            hook["command"] = [CATALOG_DRIVER if c == TFX_EXAMPLE_GEN_DRIVER else c for c in hook["command"]]


def compile_pipeline(config, settings: KubeflowSettings, output: Optional[str | os.PathLike] = None) -> dict:
    """Compiles `create_pipeline(config)` for `settings.target`.

    Returns the PipelineJob as a dict (`pipelineSpec`, `runtimeConfig`, ...) and writes it
    as JSON to `output` when given. Refuses an image reference that can move (`:latest`).
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kubeflow_v2

    from schema.compat import kubeflow_artifact_titles
    from kubeflow.vertex_training import use_vertex_training
    from pipeline_definition import create_pipeline

    if not is_immutable_image(settings.image):
        raise ImageError(
            f"image {settings.image} can change under a cached step: give it by digest (@sha256:...) or by "
            f"git-SHA tag (`make image` tags with the commit), e.g. --image {settings.image.rsplit(':', 1)[0]}:<sha>")
    config = on_cluster(config, settings)
    tfx_pipeline = create_pipeline(config)
    if settings.vertex_training:
        use_vertex_training(tfx_pipeline, settings.vertex_training_config())
    if settings.target == TARGET_KFP:
        catalog_fingerprint_parameter(tfx_pipeline)
    runner = kubeflow_v2.KubeflowV2DagRunner(
        kubeflow_v2.KubeflowV2DagRunnerConfig(
            display_name=config.pipeline_name, default_image=settings.image,
            use_pipeline_spec_2_1=settings.target == TARGET_KFP,
        )
    )
    with kubeflow_artifact_titles(kfp_artifact_title):
        job = runner.run(tfx_pipeline, write_out=False)
    job = _rewrite(job, str(PROJECT_ROOT).rstrip("/") + "/", settings.code_root.rstrip("/") + "/")
    if settings.target == TARGET_VERTEX:
        _use_catalog_driver(job)
    else:
        for name in KFP_UNCACHED_TASKS:
            job["pipelineSpec"]["root"]["dag"]["tasks"][name]["cachingOptions"] = {"enableCache": False}
    job.setdefault("labels", {})[TARGET_LABEL] = settings.target
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(job, sort_keys=True, indent=2) + "\n")
    return job


def compile_from_args(
    args: argparse.Namespace, config_from_args: Callable[[argparse.Namespace], Any], out: Optional[TextIO] = None
) -> dict:
    out = out or sys.stdout
    settings = KubeflowSettings.from_args(args)
    config = cluster_config_from_args(args, settings, config_from_args)
    job = compile_pipeline(config, settings, args.output)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"Compiled {config.pipeline_name} for {settings.target} ({len(tasks)} tasks) to {args.output}", file=out)
    print(f"  image: {settings.image}; pipeline root: {config.pipeline_root}; "
          f"training: {settings.train_workers} worker(s)"
          f"{' on Vertex AI' if settings.vertex_training else ' in the Trainer step'}; "
          f"Beam: {settings.beam_runner}", file=out)
    unset = settings.placeholders()
    if unset:
        print(f"  still to set before submitting: {', '.join(unset)} "
              f"({', '.join(ENV_VARS[n] for n in unset)} or the matching flags)", file=out)
    return job
