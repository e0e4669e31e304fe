"""Submits a compiled pipeline to Kubeflow Pipelines (`--host`) or Vertex AI (`--vertex`).

Before anything is sent, `problems_for` reads the spec as the backend would and refuses
what that backend cannot run, saying why: open-source KFP 2.x implements no TFX resolver
executors and its driver takes only pipeline spec 2.1 `constant` parameters, and no
backend should be given an image reference that can move under a cached step or a
setting still at its `YOUR_...` placeholder. On the kfp target the catalog's fingerprint
(CSV and photos) is computed here and passed as the `catalog_fingerprint` pipeline
parameter, the ExampleGen's cache key on a backend that runs no pre-cache check.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from kubeflow.settings import ENV_VARS, PLACEHOLDER, TARGET_KFP, TARGET_VERTEX, KubeflowSettings, is_immutable_image


class SubmitError(ValueError):
    """The spec cannot run on the chosen backend, or a setting is missing."""


def load_job(package: str | os.PathLike) -> dict:
    job = json.loads(Path(package).read_text())
    return job if "pipelineSpec" in job else {"pipelineSpec": job, "runtimeConfig": {}}


def _executors(job: dict) -> dict:
    return job["pipelineSpec"].get("deploymentSpec", {}).get("executors", {})


def problems_for(job: dict, target: str, pipeline_root: Optional[str] = None) -> list[str]:
    """What in a compiled job keeps it from running on `target`'s backend (empty: none)."""
    spec = job["pipelineSpec"]
    problems = []
    for name, executor in sorted(_executors(job).items()):
        image = executor.get("container", {}).get("image")
        if image is None:
            continue
        if PLACEHOLDER in image:
            problems.append(f"executor {name}: image {image} still names a value to set")
        elif not is_immutable_image(image):
            problems.append(f"executor {name}: image {image} can change under a cached step (use a digest or "
                            "git-SHA tag)")
    root = pipeline_root or job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    if PLACEHOLDER in root:
        problems.append(f"pipeline root {root} still names a value to set")
    if target == TARGET_KFP:
        resolvers = sorted(name for name, executor in _executors(job).items() if "resolver" in executor)
        if resolvers:
            problems.append(f"open-source KFP implements no resolver executors, and this spec has "
                            f"{', '.join(resolvers)}: compile with --target kfp")
        legacy = sorted(
            f"{task_name}.{param}"
            for task_name, task in spec["root"]["dag"].get("tasks", {}).items()
            for param, value in task.get("inputs", {}).get("parameters", {}).items()
            if "constantValue" in value.get("runtimeValue", {})
        )
        if spec.get("schemaVersion") != "2.1.0" or legacy:
            problems.append(f"open-source KFP's driver takes only pipeline spec 2.1 `constant` parameters; this spec "
                            f"is schema {spec.get('schemaVersion')} with {len(legacy)} legacy `constantValue` "
                            "parameters: compile with --target kfp")
    return problems


def catalog_parameters(job: dict) -> dict[str, str]:
    """Pipeline parameters `submit` computes: the catalog fingerprint, where the spec asks."""
    from components.catalog_example_gen.fingerprint import CATALOG_FINGERPRINT_KEY, catalog_fingerprint

    spec = job["pipelineSpec"]
    wanted = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    if CATALOG_FINGERPRINT_KEY not in wanted:
        return {}
    for task in spec["root"]["dag"]["tasks"].values():
        parameters = task.get("inputs", {}).get("parameters", {})
        if parameters.get(CATALOG_FINGERPRINT_KEY, {}).get("componentInputParameter") == CATALOG_FINGERPRINT_KEY:
            value = parameters["input_base"]["runtimeValue"]
            input_base = value.get("constant", value.get("constantValue", {}).get("stringValue"))
            return {CATALOG_FINGERPRINT_KEY: catalog_fingerprint(input_base)}
    raise SubmitError(f"the spec declares {CATALOG_FINGERPRINT_KEY} but no ExampleGen task reads it")


def submit_kfp(
    package: str | os.PathLike,
    host: str,
    experiment: Optional[str] = None,
    run_name: Optional[str] = None,
    pipeline_root: Optional[str] = None,
    enable_caching: Optional[bool] = None,
    out: Optional[TextIO] = None,
) -> str:
    """Uploads the pipeline (a new version if it exists) to a KFP endpoint and starts a run.

    Returns the run's address in the KFP UI.
    """
    import kfp
    import yaml

    out = out or sys.stdout
    job = load_job(package)
    problems = problems_for(job, TARGET_KFP, pipeline_root)
    if problems:
        raise SubmitError("this spec cannot run on open-source Kubeflow Pipelines: " + "; ".join(problems))
    params = catalog_parameters(job)
    spec = job["pipelineSpec"]
    name = spec["pipelineInfo"]["name"]
    root = pipeline_root or job.get("runtimeConfig", {}).get("gcsOutputDirectory")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    version_name = f"{name}-{stamp}"
    client = kfp.Client(host=host)
    with tempfile.TemporaryDirectory() as tmp:
        # The KFP API takes the PipelineSpec itself, as YAML.
        spec_path = os.path.join(tmp, f"{name}.yaml")
        with open(spec_path, "w") as f:
            yaml.safe_dump(spec, f, sort_keys=True)
        pipeline_id = client.get_pipeline_id(name)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(spec_path, pipeline_name=name).pipeline_id
            versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
            version_id = versions.pipeline_versions[0].pipeline_version_id
        else:
            version = client.upload_pipeline_version(spec_path, version_name, pipeline_id=pipeline_id)
            version_id = version.pipeline_version_id
    exp = client.create_experiment(experiment or name)
    run = client.run_pipeline(
        experiment_id=exp.experiment_id,
        job_name=run_name or version_name,
        pipeline_id=pipeline_id,
        version_id=version_id,
        params=params,
        pipeline_root=root,
        enable_caching=enable_caching,
    )
    url = f"{host.rstrip('/')}/#/runs/details/{run.run_id}"
    print(f"Submitted run {run.run_id} of {name}: {url}", file=out, flush=True)
    return url


def submit_vertex(
    package: str | os.PathLike,
    settings: KubeflowSettings,
    run_name: Optional[str] = None,
    pipeline_root: Optional[str] = None,
    enable_caching: Optional[bool] = None,
    experiment: Optional[str] = None,
    out: Optional[TextIO] = None,
) -> str:
    """Starts a run on Vertex AI Pipelines; returns its address in the Cloud console."""
    from google.cloud import aiplatform

    out = out or sys.stdout
    job_dict = load_job(package)
    problems = problems_for(job_dict, TARGET_VERTEX, pipeline_root)
    if PLACEHOLDER in settings.project:
        problems.append(f"set the GCP project (--project or {ENV_VARS['project']})")
    if problems:
        raise SubmitError("this spec cannot run on Vertex AI Pipelines: " + "; ".join(problems))
    name = job_dict["pipelineSpec"]["pipelineInfo"]["name"]
    root = pipeline_root or job_dict.get("runtimeConfig", {}).get("gcsOutputDirectory")
    job = aiplatform.PipelineJob(
        display_name=run_name or name,
        template_path=str(package),
        pipeline_root=root,
        parameter_values=catalog_parameters(job_dict) or None,
        project=settings.project,
        location=settings.region,
        enable_caching=enable_caching,
    )
    job.submit(service_account=settings.service_account, experiment=experiment)
    run_id = job.name
    url = (f"https://console.cloud.google.com/vertex-ai/locations/{settings.region}"
           f"/pipelines/runs/{run_id}?project={settings.project}")
    print(f"Submitted Vertex AI pipeline run {run_id} of {name}: {url}", file=out, flush=True)
    return url


def submit_from_args(
    args: argparse.Namespace, config_from_args: Callable[[argparse.Namespace], Any], out: Optional[TextIO] = None
) -> str:
    """`pipeline.py submit`: compiles first unless `--package` is given, then submits."""
    from kubeflow.compiler import compile_from_args

    out = out or sys.stdout
    target = TARGET_VERTEX if args.vertex else TARGET_KFP
    args = argparse.Namespace(**{**vars(args), "target": target})
    settings = KubeflowSettings.from_args(args)
    caching = False if getattr(args, "no_cache", False) else None
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package
        if package is None:
            args = argparse.Namespace(**{**vars(args), "output": args.output or os.path.join(tmp, "pipeline.json")})
            compile_from_args(args, config_from_args, out=out)
            package = args.output
        if args.vertex:
            return submit_vertex(package, settings, run_name=args.run_name, pipeline_root=args.pipeline_root,
                                 enable_caching=caching, experiment=args.experiment, out=out)
        return submit_kfp(package, args.host, experiment=args.experiment, run_name=args.run_name,
                          pipeline_root=args.pipeline_root, enable_caching=caching, out=out)
