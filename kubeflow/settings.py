"""Where and how the pipeline runs on a cluster: one typed object, read once at the edge.

`KubeflowSettings` says where (project, region, bucket, image, pipeline root, serving dir)
and on which backend (`target`: Vertex AI Pipelines or open-source Kubeflow Pipelines)
the pipeline runs; what it computes stays in `PipelineConfig`. Settings come from flags,
else environment variables, else defaults that name what to set (`YOUR_PROJECT`,
`gs://YOUR_BUCKET`). This module imports no TFX, so `pipeline.py --help` stays fast.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any, Mapping, Optional

from schema.config import PROJECT_ROOT

TARGET_VERTEX = "vertex"  # Vertex AI Pipelines: runs TFX resolvers and pre-cache checks
TARGET_KFP = "kfp"  # open-source Kubeflow Pipelines 2.x: neither
TARGETS = (TARGET_VERTEX, TARGET_KFP)

DEFAULT_PROJECT = "YOUR_PROJECT"
DEFAULT_REGION = "us-central1"
DEFAULT_BUCKET = "gs://YOUR_BUCKET"
IMAGE_REPOSITORY = "gcr.io/YOUR_PROJECT/categorize-pipeline"
DEFAULT_MACHINE_TYPE = "n1-standard-8"
# Where kubeflow/Dockerfile installs the project: site-packages of the image's Python
# (python:3.11 images, /usr/local); its smoke test (--in-image) checks that it is so.
IMAGE_CODE_ROOT = "/usr/local/lib/python3.11/site-packages"
PLACEHOLDER = "YOUR_"

# An image reference that cannot move under a cached step: a digest, or a git-SHA tag
# (what `make image` tags with).
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_SHA_TAG = re.compile(r":[0-9a-f]{7,40}$")

# Environment variable read for each setting when its flag is not given.
ENV_VARS = {
    "target": "PIPELINE_TARGET",
    "project": "GCP_PROJECT",
    "region": "GCP_REGION",
    "bucket": "GCS_BUCKET",
    "pipeline_root": "PIPELINE_ROOT",
    "serving_dir": "SERVING_DIR",
    "catalog": "CATALOG_URI",
    "image": "PIPELINE_IMAGE",
    "train_workers": "TRAIN_WORKERS",
    "machine_type": "TRAIN_MACHINE_TYPE",
    "accelerator_type": "TRAIN_ACCELERATOR_TYPE",
    "accelerator_count": "TRAIN_ACCELERATOR_COUNT",
    "beam_runner": "BEAM_RUNNER",
    "beam_args": "BEAM_ARGS",
    "vertex_training": "VERTEX_TRAINING",
    "service_account": "SERVICE_ACCOUNT",
}


def git_sha(root: Path = PROJECT_ROOT) -> Optional[str]:
    """The checkout's commit (12 hex digits), or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,40}", sha) else None


def default_image() -> str:
    """`<repository>:<git sha>`, the tag `make image` gives the image of this commit."""
    return f"{IMAGE_REPOSITORY}:{git_sha() or 'YOUR_GIT_SHA'}"


def is_immutable_image(image: str) -> bool:
    return bool(_DIGEST.search(image) or _SHA_TAG.search(image))


@dataclasses.dataclass
class KubeflowSettings:
    """Where and how the pipeline runs on a cluster (not what it computes: PipelineConfig)."""

    target: str = TARGET_VERTEX
    project: str = DEFAULT_PROJECT
    region: str = DEFAULT_REGION
    bucket: str = DEFAULT_BUCKET  # gs://BUCKET: default home of pipeline root, serving, Beam temp
    pipeline_root: Optional[str] = None  # default <bucket>/pipelines/<spec>
    serving_dir: Optional[str] = None  # default <bucket>/serving (models land in <serving>/<spec>/)
    catalog: Optional[str] = None  # default <bucket>/datasets/<spec> (products.csv + images)
    image: str = dataclasses.field(default_factory=default_image)
    train_workers: int = 1
    machine_type: str = DEFAULT_MACHINE_TYPE
    accelerator_type: Optional[str] = None  # e.g. NVIDIA_TESLA_T4
    accelerator_count: int = 0
    beam_runner: str = "DataflowRunner"  # or DirectRunner (Beam inside each step's container)
    beam_args: tuple[str, ...] = ()  # extra Beam args, appended after the runner's
    # Trainer step launches a Vertex AI CustomJob; default: on the Vertex target only.
    vertex_training: Optional[bool] = None
    service_account: Optional[str] = None
    code_root: str = IMAGE_CODE_ROOT

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        self.train_workers = int(self.train_workers)
        self.accelerator_count = int(self.accelerator_count or 0)
        if self.train_workers < 1:
            raise ValueError(f"train_workers must be at least 1, got {self.train_workers}")
        self.bucket = self.bucket.rstrip("/")
        if isinstance(self.beam_args, str):
            self.beam_args = tuple(shlex.split(self.beam_args))
        self.beam_args = tuple(self.beam_args)
        if self.vertex_training is None:
            self.vertex_training = self.target == TARGET_VERTEX

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, **overrides: Any) -> "KubeflowSettings":
        """Flags (overrides, None = not given) win over environment variables over defaults."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, var in ENV_VARS.items():
            raw = env.get(var)
            if field == "project" and not raw:
                raw = env.get("GOOGLE_CLOUD_PROJECT")
            if raw:
                values[field] = _parse_bool(raw) if field == "vertex_training" else raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Optional[Mapping[str, str]] = None) -> "KubeflowSettings":
        overrides = {field: getattr(args, field, None) for field in ENV_VARS}
        if not overrides.get("beam_args"):
            overrides["beam_args"] = None
        if getattr(args, "no_vertex_training", False):
            overrides["vertex_training"] = False
        return cls.from_env(env, **overrides)

    # -- derived locations ------------------------------------------------------------
    def pipeline_root_for(self, spec_name: str) -> str:
        return self.pipeline_root or f"{self.bucket}/pipelines/{spec_name}"

    def serving_root(self) -> str:
        return self.serving_dir or f"{self.bucket}/serving"

    def catalog_for(self, spec_name: str) -> str:
        return self.catalog or f"{self.bucket}/datasets/{spec_name}"

    @property
    def temp_location(self) -> str:
        return f"{self.bucket}/tmp"

    def placeholders(self) -> list[str]:
        """Settings still at a value that names what to set (YOUR_PROJECT, ...)."""
        names = ("project", "bucket", "image", "pipeline_root", "serving_dir", "catalog")
        return [n for n in names if PLACEHOLDER in str(getattr(self, n) or "")]

    # -- what the cluster run needs ---------------------------------------------------
    def beam_pipeline_args(self) -> list[str]:
        """Beam args for every Beam component (they replace the local DirectRunner ones)."""
        if self.beam_runner == "DataflowRunner":
            args = [
                "--runner=DataflowRunner",
                f"--project={self.project}",
                f"--region={self.region}",
                f"--temp_location={self.temp_location}",
                f"--staging_location={self.bucket}/staging",
                # Dataflow workers import the project's executors and preprocessing: the
                # pipeline image doubles as the Beam SDK container (it has /opt/apache/beam).
                f"--sdk_container_image={self.image}",
                "--experiments=use_runner_v2",
            ]
            if self.service_account:
                args.append(f"--service_account_email={self.service_account}")
        elif self.beam_runner == "DirectRunner":
            # The workers are the component's own processes, in this image: saying so spares
            # each Beam component TFX's sdist of itself for remote workers (schema/config.py).
            args = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=0",
                    f"--sdk_container_image={self.image}"]
        else:
            args = [f"--runner={self.beam_runner}"]
        return args + list(self.beam_args)

    def worker_pool_specs(self) -> list[dict[str, Any]]:
        """Vertex AI CustomJob worker pools: pool 0 the chief (1 replica), pool 1 N-1 workers."""
        machine: dict[str, Any] = {"machine_type": self.machine_type}
        if self.accelerator_type and self.accelerator_count:
            machine.update(accelerator_type=self.accelerator_type, accelerator_count=self.accelerator_count)

        def pool(replicas: int) -> dict[str, Any]:
            # container_spec.command is set by TFX to `python -m tfx.scripts.run_executor ...`.
            return {
                "machine_spec": dict(machine),
                "replica_count": replicas,
                "container_spec": {"image_uri": self.image},
            }

        pools = [pool(1)]
        if self.train_workers > 1:
            pools.append(pool(self.train_workers - 1))
        return pools

    def vertex_training_config(self) -> dict[str, Any]:
        """Trainer custom_config entries read by TFX's Vertex AI training extension."""
        from tfx.extensions.google_cloud_ai_platform import constants
        from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

        job_spec: dict[str, Any] = {"worker_pool_specs": self.worker_pool_specs()}
        if self.service_account:
            job_spec["service_account"] = self.service_account
        return {
            constants.ENABLE_VERTEX_KEY: True,
            constants.VERTEX_REGION_KEY: self.region,
            vertex_executor.TRAINING_ARGS_KEY: {"project": self.project, "job_spec": job_spec},
        }


def _parse_bool(raw: str) -> bool:
    return raw.strip().lower() not in ("0", "false", "no", "off", "")


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `compile` and `submit`; each falls back to an environment variable."""
    def env(field: str) -> str:
        return f"(env {ENV_VARS[field]})"

    parser.add_argument("--project", default=None, help=f"GCP project {env('project')}; default {DEFAULT_PROJECT}")
    parser.add_argument("--region", default=None, help=f"GCP region {env('region')}; default {DEFAULT_REGION}")
    parser.add_argument("--bucket", default=None,
                        help=f"gs:// bucket {env('bucket')}; default {DEFAULT_BUCKET}. Defaults below it: "
                             "catalog <bucket>/datasets/<spec>, pipeline root <bucket>/pipelines/<spec>, "
                             "serving dir <bucket>/serving (--catalog, --pipeline-root, --serving-dir or "
                             f"{ENV_VARS['catalog']}, {ENV_VARS['pipeline_root']}, {ENV_VARS['serving_dir']})")
    parser.add_argument("--image", default=None,
                        help=f"container image {env('image')}, by digest or git-SHA tag; default "
                             f"{IMAGE_REPOSITORY}:<git sha of this checkout>")
    parser.add_argument("--train-workers", type=int, default=None,
                        help=f"training replicas: 1 chief + N-1 workers {env('train_workers')}; default 1")
    parser.add_argument("--machine-type", default=None,
                        help=f"training machine type {env('machine_type')}; default {DEFAULT_MACHINE_TYPE}")
    parser.add_argument("--accelerator-type", default=None, help=f"e.g. NVIDIA_TESLA_T4 {env('accelerator_type')}")
    parser.add_argument("--accelerator-count", type=int, default=None, help=env("accelerator_count"))
    parser.add_argument("--beam-runner", default=None,
                        help=f"DataflowRunner (default) or DirectRunner {env('beam_runner')}")
    parser.add_argument("--beam-arg", dest="beam_args", action="append", default=None,
                        help=f"extra Beam argument, repeatable {env('beam_args')}, e.g. --beam-arg=--max_num_workers=8")
    parser.add_argument("--no-vertex-training", action="store_true",
                        help="train inside the Trainer step instead of a Vertex AI CustomJob (env VERTEX_TRAINING=0; "
                             "the default on the kfp target)")
    parser.add_argument("--service-account", default=None, help=env("service_account"))


def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="pipeline spec to write (JSON)")
    parser.add_argument("--target", choices=TARGETS, default=None,
                        help=f"backend the spec is for {'(env ' + ENV_VARS['target'] + ')'}: vertex (default; "
                             "latest-blessed resolver, pre-cache check) or kfp (open-source Kubeflow Pipelines 2.x: "
                             "pipeline spec 2.1, the incumbent is the newest pushed model)")
    add_cluster_arguments(parser)


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--host", default=None, help="KFP API endpoint, e.g. http://localhost:8080 (target kfp)")
    target.add_argument("--vertex", action="store_true", help="run on Vertex AI Pipelines (target vertex)")
    parser.add_argument("--package", default=None, help="a compiled pipeline JSON (default: compile now)")
    parser.add_argument("--output", default=None, help="where to keep the spec compiled now (default: a temp file)")
    parser.add_argument("--experiment", default=None, help="experiment name (default: the pipeline name)")
    parser.add_argument("--run-name", default=None)
    add_cluster_arguments(parser)
