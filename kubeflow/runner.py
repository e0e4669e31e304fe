"""Kubeflow Pipelines and Vertex AI: compile the pipeline, submit it, train on a cluster.

    python pipeline.py compile --output pipeline.json [--image IMAGE] [--pipeline-root URI]
                               [--train-workers N] [--project P] [--region R] [--bucket gs://B] ...
    python pipeline.py submit --host https://KFP_ENDPOINT [--package pipeline.json] ...
    python pipeline.py submit --vertex [--package pipeline.json] ...

`compile_pipeline` compiles the very pipeline that `pipeline.py run` runs locally
(`create_pipeline(config)`) with TFX's KubeflowV2DagRunner into a KFP v2 `PipelineJob` JSON
(its `pipelineSpec` is a KFP `PipelineSpec`), which both Vertex AI Pipelines and
Kubeflow Pipelines 2.x run. What changes on a cluster:

- every executor runs in one container image (kubeflow/Dockerfile), and paths into the
  project (the curated schema) are rewritten to where that image holds the code;
- Beam components (ExampleGen, StatisticsGen, TaxonomyGen, Transform, Evaluator) get
  Dataflow arguments through `PipelineConfig.beam_args`;
- the Trainer step launches a Vertex AI CustomJob with N replicas (chief pool of 1, worker
  pool of N-1, same image) through kubeflow/trainer_executor.py;
- the project's custom artifact types get a KFP schema title that is importable in the
  image (`kubeflow.RejectedRecords`, `kubeflow.CategoryTaxonomy`).

Settings come from flags, else environment variables, else defaults that name what to
set (`YOUR_PROJECT`, `gs://YOUR_BUCKET`). The command line lives in pipeline.py; this
module imports no TFX at import time, so `pipeline.py --help` stays fast.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, TextIO

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_PROJECT = "YOUR_PROJECT"
DEFAULT_REGION = "us-central1"
DEFAULT_BUCKET = "gs://YOUR_BUCKET"
DEFAULT_IMAGE = "gcr.io/YOUR_PROJECT/categorize-pipeline:latest"
DEFAULT_MACHINE_TYPE = "n1-standard-8"
# Where kubeflow/Dockerfile copies the project (and puts it on PYTHONPATH).
IMAGE_CODE_ROOT = "/pipeline"
PLACEHOLDER = "YOUR_"

# Environment variable read for each setting when its flag is not given.
ENV_VARS = {
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


@dataclasses.dataclass
class KubeflowSettings:
    """Where and how the pipeline runs on a cluster (not what it computes: PipelineConfig)."""

    project: str = DEFAULT_PROJECT
    region: str = DEFAULT_REGION
    bucket: str = DEFAULT_BUCKET  # gs://BUCKET: default home of pipeline root, serving, Beam temp
    pipeline_root: Optional[str] = None  # default <bucket>/pipelines/<spec>
    serving_dir: Optional[str] = None  # default <bucket>/serving (models land in <serving>/<spec>/)
    catalog: Optional[str] = None  # default <bucket>/datasets/<spec> (products.csv + images)
    image: str = DEFAULT_IMAGE
    train_workers: int = 1
    machine_type: str = DEFAULT_MACHINE_TYPE
    accelerator_type: Optional[str] = None  # e.g. NVIDIA_TESLA_T4
    accelerator_count: int = 0
    beam_runner: str = "DataflowRunner"  # or DirectRunner (Beam inside each step's container)
    beam_args: tuple[str, ...] = ()  # extra Beam args, appended after the runner's
    vertex_training: bool = True  # Trainer step launches a Vertex AI CustomJob
    service_account: Optional[str] = None
    code_root: str = IMAGE_CODE_ROOT

    def __post_init__(self) -> None:
        self.train_workers = int(self.train_workers)
        self.accelerator_count = int(self.accelerator_count or 0)
        if self.train_workers < 1:
            raise ValueError(f"train_workers must be at least 1, got {self.train_workers}")
        self.bucket = self.bucket.rstrip("/")
        if isinstance(self.beam_args, str):
            self.beam_args = tuple(shlex.split(self.beam_args))
        self.beam_args = tuple(self.beam_args)

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
            args = ["--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=0"]
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


# -- pipeline configuration -------------------------------------------------------------
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

    `config_from_args` is pipeline.py's own flag-to-PipelineConfig function, so every
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
    """A copy of `config` with the cluster's Beam args and number of training workers."""
    return dataclasses.replace(
        config, beam_args=tuple(settings.beam_pipeline_args()), train_workers=settings.train_workers
    )


def use_vertex_training(tfx_pipeline, settings: KubeflowSettings) -> list[str]:
    """Points every TaxonomyTrainer of the pipeline at Vertex AI Training; returns their ids.

    TaxonomyTrainer builds its own spec (and executor spec) from the standard Trainer's
    arguments, so the cluster executor and its custom_config are set on the built node.
    """
    from tfx.dsl.components.base import executor_spec
    from tfx.types import standard_component_specs
    from tfx.utils import json_utils

    from components.taxonomy_aware.component import TaxonomyTrainer
    from kubeflow.trainer_executor import VertexTaxonomyTrainerExecutor

    key = standard_component_specs.CUSTOM_CONFIG_KEY
    ids = []
    for node in tfx_pipeline.components:
        if not isinstance(node, TaxonomyTrainer):
            continue
        raw = node.exec_properties.get(key)
        custom_config = dict(json_utils.loads(raw) if raw else {})
        custom_config.update(settings.vertex_training_config())
        node.exec_properties[key] = json_utils.dumps(custom_config)
        node.executor_spec = executor_spec.ExecutorClassSpec(VertexTaxonomyTrainerExecutor)
        ids.append(node.id)
    return ids


# KFP v2 needs a custom artifact type's schema title to read `namespace.TypeName`, and the
# container imports the class from that title. Ours are RejectedRecords / CategoryTaxonomy
# (components/artifacts.py), re-exported by the `kubeflow` package for that purpose.
_KFP_TITLE = re.compile(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$")


def kfp_artifact_title(artifact_type: type) -> Optional[str]:
    """The KFP schema title for one of the project's custom artifact types, else None."""
    import kubeflow

    name = artifact_type.__name__
    if name in kubeflow.ARTIFACT_TYPES and getattr(kubeflow, name) is artifact_type:
        return f"kubeflow.{name}"
    return None


@contextlib.contextmanager
def _kfp_artifact_titles() -> Iterator[None]:
    """While compiling, gives the project's artifact types an importable KFP schema title.

    TFX's compiler takes the title from TYPE_NAME, which must then already be of the form
    `namespace.TypeName` ("Invalid custom artifact type name: RejectedRecords" otherwise);
    changing TYPE_NAME would rename the types in the ML Metadata of local runs, so the
    title is given here instead, and only while compiling.
    """
    import yaml
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    original = compiler_utils.get_artifact_schema
    generic = Path(compiler_utils.__file__).parent / "artifact_types" / "Artifact.yaml"

    def get_artifact_schema(artifact_type):
        title = None if _KFP_TITLE.fullmatch(artifact_type.TYPE_NAME) else kfp_artifact_title(artifact_type)
        if title is None:
            return original(artifact_type)
        # What TFX itself writes for a custom type: the generic Artifact schema, retitled.
        schema = yaml.safe_load(generic.read_text())
        schema["title"] = title
        return yaml.dump(schema, sort_keys=False)

    compiler_utils.get_artifact_schema = get_artifact_schema
    try:
        yield
    finally:
        compiler_utils.get_artifact_schema = original


def _to_image_paths(value: Any, local_root: str, image_root: str) -> Any:
    """Rewrites paths into this checkout (e.g. the curated schema) to the image's copy."""
    if isinstance(value, str):
        return value.replace(local_root.rstrip("/") + "/", image_root.rstrip("/") + "/")
    if isinstance(value, list):
        return [_to_image_paths(v, local_root, image_root) for v in value]
    if isinstance(value, dict):
        return {k: _to_image_paths(v, local_root, image_root) for k, v in value.items()}
    return value


def compile_pipeline(config, settings: KubeflowSettings, output: Optional[str | os.PathLike] = None) -> dict:
    """Compiles `create_pipeline(config)` for Kubeflow Pipelines v2 / Vertex AI Pipelines.

    Returns the PipelineJob as a dict (`pipelineSpec`, `runtimeConfig`, ...) and writes it
    as JSON to `output` when given.
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kubeflow_v2

    from pipeline import create_pipeline

    config = on_cluster(config, settings)
    tfx_pipeline = create_pipeline(config)
    if settings.vertex_training:
        use_vertex_training(tfx_pipeline, settings)
    runner = kubeflow_v2.KubeflowV2DagRunner(
        kubeflow_v2.KubeflowV2DagRunnerConfig(display_name=config.pipeline_name, default_image=settings.image)
    )
    with _kfp_artifact_titles():
        job = runner.run(tfx_pipeline, write_out=False)
    job = _to_image_paths(job, str(PROJECT_ROOT), settings.code_root)
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(job, sort_keys=True, indent=2) + "\n")
    return job


# -- submission ---------------------------------------------------------------------------
def _load_job(package: str | os.PathLike) -> dict:
    job = json.loads(Path(package).read_text())
    return job if "pipelineSpec" in job else {"pipelineSpec": job, "runtimeConfig": {}}


def unset_placeholders(job: dict, pipeline_root: Optional[str] = None) -> list[str]:
    """What in a compiled job still names a value to set (image, pipeline root)."""
    spec = job["pipelineSpec"]
    problems = sorted({
        f"image {executor['container']['image']}"
        for executor in spec.get("deploymentSpec", {}).get("executors", {}).values()
        if PLACEHOLDER in executor.get("container", {}).get("image", "")
    })
    root = pipeline_root or job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
    if PLACEHOLDER in root:
        problems.append(f"pipeline root {root}")
    return problems


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

    job = _load_job(package)
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

    if PLACEHOLDER in settings.project:
        raise ValueError(f"set the GCP project (--project or {ENV_VARS['project']}) before submitting to Vertex AI")
    job_dict = _load_job(package)
    name = job_dict["pipelineSpec"]["pipelineInfo"]["name"]
    root = pipeline_root or job_dict.get("runtimeConfig", {}).get("gcsOutputDirectory")
    job = aiplatform.PipelineJob(
        display_name=run_name or name,
        template_path=str(package),
        pipeline_root=root,
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


# -- TFJob (Kubeflow training operator) -----------------------------------------------------
TFJOB_TEMPLATE = Path(__file__).resolve().parent / "tfjob.yaml"


def tfjob_manifest(
    settings: KubeflowSettings,
    inputs: str,
    outputs: str,
    exec_properties: str,
    name: str = "categorize-trainer",
    namespace: Optional[str] = None,
) -> dict:
    """The TFJob of kubeflow/tfjob.yaml for one Trainer execution.

    `inputs`, `outputs` and `exec_properties` are the JSON strings that the Trainer step
    logs ("Inputs for Executor is: ..."); every replica runs
    `python -m tfx.scripts.run_executor` with the taxonomy-aware trainer executor on them.
    Chief: 1 replica, Worker: N-1; the training operator sets TF_CONFIG.
    """
    import yaml

    manifest = yaml.safe_load(TFJOB_TEMPLATE.read_text())
    manifest["metadata"]["name"] = name
    if namespace:
        manifest["metadata"]["namespace"] = namespace
    specs = manifest["spec"]["tfReplicaSpecs"]
    values = {"TFX_INPUTS": inputs, "TFX_OUTPUTS": outputs, "TFX_EXEC_PROPERTIES": exec_properties}
    for role, replicas in (("Chief", 1), ("Worker", settings.train_workers - 1)):
        if replicas < 1:
            specs.pop(role, None)
            continue
        specs[role]["replicas"] = replicas
        for container in specs[role]["template"]["spec"]["containers"]:
            container["image"] = settings.image
            for env in container.get("env", []):
                if env["name"] in values:
                    env["value"] = values[env["name"]]
    return manifest


# -- command line (wired into pipeline.py) ------------------------------------------------------
# pipeline.py adds its `run` flags (--spec, --catalog, --pipeline-root, --serving-dir, model
# and gating flags) to `compile` and `submit`; these are the cluster-only ones.
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
    parser.add_argument("--image", default=None, help=f"container image {env('image')}; default {DEFAULT_IMAGE}")
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
                        help="train inside the Trainer step instead of a Vertex AI CustomJob (env VERTEX_TRAINING=0)")
    parser.add_argument("--service-account", default=None, help=env("service_account"))


def add_compile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="pipeline spec to write (JSON)")
    add_cluster_arguments(parser)


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--host", default=None, help="KFP API endpoint, e.g. http://localhost:8080")
    target.add_argument("--vertex", action="store_true", help="run on Vertex AI Pipelines (project, region)")
    parser.add_argument("--package", default=None, help="a compiled pipeline JSON (default: compile now)")
    parser.add_argument("--output", default=None, help="where to keep the spec compiled now (default: a temp file)")
    parser.add_argument("--experiment", default=None, help="experiment name (default: the pipeline name)")
    parser.add_argument("--run-name", default=None)
    add_cluster_arguments(parser)


def compile_from_args(
    args: argparse.Namespace, config_from_args: Callable[[argparse.Namespace], Any], out: Optional[TextIO] = None
) -> dict:
    out = out or sys.stdout
    settings = KubeflowSettings.from_args(args)
    config = cluster_config_from_args(args, settings, config_from_args)
    job = compile_pipeline(config, settings, args.output)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"Compiled {config.pipeline_name} ({len(tasks)} tasks) to {args.output}", file=out)
    print(f"  image: {settings.image}; pipeline root: {config.pipeline_root}; "
          f"training: {settings.train_workers} worker(s)"
          f"{' on Vertex AI' if settings.vertex_training else ' in the Trainer step'}; "
          f"Beam: {settings.beam_runner}", file=out)
    unset = settings.placeholders()
    if unset:
        print(f"  still to set before submitting: {', '.join(unset)} "
              f"({', '.join(ENV_VARS[n] for n in unset)} or the matching flags)", file=out)
    return job


def submit_from_args(
    args: argparse.Namespace, config_from_args: Callable[[argparse.Namespace], Any], out: Optional[TextIO] = None
) -> str:
    out = out or sys.stdout
    settings = KubeflowSettings.from_args(args)
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package
        if package is None:
            args = argparse.Namespace(**{**vars(args), "output": args.output or os.path.join(tmp, "pipeline.json")})
            compile_from_args(args, config_from_args, out=out)
            package = args.output
        problems = unset_placeholders(_load_job(package), args.pipeline_root)
        if args.vertex and PLACEHOLDER in settings.project:
            problems.append(f"project {settings.project}")
        if problems:
            print(f"error: set these before submitting (flags or environment variables, see "
                  f"`pipeline.py submit --help`): {'; '.join(problems)}", file=sys.stderr)
            raise SystemExit(2)
        caching = False if getattr(args, "no_cache", False) else None
        if args.vertex:
            return submit_vertex(package, settings, run_name=args.run_name, pipeline_root=args.pipeline_root,
                                 enable_caching=caching, experiment=args.experiment, out=out)
        return submit_kfp(package, args.host, experiment=args.experiment, run_name=args.run_name,
                          pipeline_root=args.pipeline_root, enable_caching=caching, out=out)
