"""Smoke test of the pipeline image: imports what the cluster imports, runs the encoders once.

    python -m kubeflow.image_smoke_test [--installed | --in-image] [--beam-boot /opt/apache/beam/boot]
                                        [--beam-version 2.59.0]

Run by `kubeflow/Dockerfile` as a build step (an image that fails it is not built) and by
`make image-check` in a venv that installed the lock from the public registry alone. It
checks, in this process:

- the interpreter is the Python the lock was frozen on (LOCK_PYTHON);
- with `--installed`, that the project runs from its installed distribution (pyproject.toml),
  not from a checkout on the path, with the data files it opens (catalog specs, curated
  schemas, the TFJob manifest); with `--in-image`, also that it is installed where the
  compiled pipeline expects it (`kubeflow.settings.IMAGE_CODE_ROOT`);
- the container entry points that the compiled pipeline starts: TFX's KFP v2 executor
  runner, the ExampleGen pre-cache-check driver and `tfx.scripts.run_executor` (Vertex AI
  training replicas);
- every executor class of `create_pipeline`'s components, imported from its class path as
  the entry point imports it, plus the cluster Trainer executor (CLUSTER_EXECUTORS), each
  a TFX `BaseExecutor`;
- the user functions the pipeline names by path (the Transform's `preprocessing_fn`, the
  Trainers' `run_fn`), the TFMA metrics module and the custom artifact types under their
  KFP schema titles (`kubeflow.RejectedRecords`, ...);
- the text and image encoders load their packaged weights (no network) and embed a
  generated image and a title, with the documented shapes;
- with `--beam-boot`, that the Beam SDK boot program is there and executable, and with
  `--beam-version`, that the installed Beam SDK is that version (the boot program and the
  SDK must match).

Prints one `ok:` line per check; any failure ends with an `error:` line and exit code 1.
"""
from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
import time
import warnings
from typing import Callable, Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LOCK_PYTHON = (3, 11)  # constraints.txt was frozen on it; the image's base must match

ENTRY_POINTS = (
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    "components.catalog_example_gen.driver",  # the ExampleGen's pre-cache check (kubeflow/compiler.py)
    "tfx.scripts.run_executor",
)
# Executors the Kubeflow runner swaps in when it compiles (not in `create_pipeline`).
CLUSTER_EXECUTORS = ("kubeflow.trainer_executor.VertexTaxonomyTrainerExecutor",
                     "components.taxonomy_aware.executor.ReplicaTrainerExecutor")  # what each replica runs
METRICS_MODULE = "evaluator.metrics"
DISTRIBUTION = "categorize-pipeline"  # pyproject.toml's project name
# The project's top-level packages and modules: all must come from the one installed copy.
PROJECT_MODULES = ("schema", "components", "trainer", "evaluator", "kubeflow", "pipeline_definition", "pipeline")


def _import_by_path(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _smoke_pipeline():
    """The pipeline as compile builds it (embeddings on), on placeholder cluster URIs:
    building it reads no catalog."""
    from pipeline_definition import create_pipeline
    from schema.catalog_spec import load_spec
    from schema.config import PipelineConfig

    config = PipelineConfig(catalog_dir="gs://image-smoke-test/catalog", spec=load_spec("fashion"),
                            pipeline_root="gs://image-smoke-test/root", serving_dir="gs://image-smoke-test/serving",
                            embeddings=True)
    return create_pipeline(config)


def check_python() -> str:
    if sys.version_info[:2] != LOCK_PYTHON:
        raise RuntimeError(f"Python {sys.version.split()[0]}; the lock (constraints.txt) is for "
                           f"{'.'.join(map(str, LOCK_PYTHON))}")
    return f"Python {sys.version.split()[0]}"


def check_installed(code_root: Optional[str] = None) -> str:
    """The project is imported from its installed distribution (at `code_root` when given),
    and the data files its code opens beside its modules were installed with it."""
    from importlib import metadata
    from pathlib import Path

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise RuntimeError(f"the distribution {DISTRIBUTION} is not installed (pip install --no-deps .)") from None
    installed = Path(dist.locate_file("")).resolve()
    for name in PROJECT_MODULES:
        module = importlib.import_module(name)
        home = Path(module.__file__).resolve().parent
        if name not in ("pipeline", "pipeline_definition"):
            home = home.parent
        if home != installed:
            raise RuntimeError(f"{name} is imported from {home}, not from the installed {DISTRIBUTION} in "
                               f"{installed} (a checkout or an editable install on the path?)")
    if code_root is not None and installed != Path(code_root).resolve():
        raise RuntimeError(f"{DISTRIBUTION} is installed in {installed}, but compiled pipelines name paths "
                           f"under {code_root} (kubeflow/settings.py, IMAGE_CODE_ROOT)")
    from kubeflow.tfjob import TFJOB_TEMPLATE
    from schema.catalog_spec import CATALOGS_DIR, load_spec

    specs = sorted(path.stem for path in CATALOGS_DIR.glob("*.yaml"))
    if not specs:
        raise RuntimeError(f"no catalog specs in {CATALOGS_DIR}")
    for name in specs:
        schema_path = load_spec(name).schema_path
        if schema_path is None or not schema_path.is_file():
            raise RuntimeError(f"catalog spec {name}: its curated schema {schema_path} was not installed")
    if not TFJOB_TEMPLATE.is_file():
        raise RuntimeError(f"{TFJOB_TEMPLATE} was not installed")
    return f"{DISTRIBUTION} {dist.version} in {installed}, catalog specs {', '.join(specs)} with their schemas"


def check_entry_points() -> str:
    for module in ENTRY_POINTS:
        importlib.import_module(module)
    return f"{len(ENTRY_POINTS)} container entry points"


def check_executors_and_user_functions() -> str:
    from tfx.dsl.components.base import base_executor
    from tfx.dsl.components.base.executor_spec import ExecutorClassSpec

    pipeline = _smoke_pipeline()
    paths, user_functions = set(CLUSTER_EXECUTORS), set()
    for node in pipeline.components:
        spec = getattr(node, "executor_spec", None)
        if isinstance(spec, ExecutorClassSpec):
            paths.add(spec.class_path)
        for key in ("preprocessing_fn", "run_fn"):
            value = node.exec_properties.get(key)
            if isinstance(value, str) and value:
                user_functions.add(value)
    pipeline_paths = len(paths - set(CLUSTER_EXECUTORS))
    for path in sorted(paths):
        executor = _import_by_path(path)
        if not (isinstance(executor, type) and issubclass(executor, base_executor.BaseExecutor)):
            raise RuntimeError(f"{path} is not a TFX executor class")
    wanted = {"trainer.preprocessing.preprocessing_fn", "trainer.run.run_fn"}
    if not wanted <= user_functions:
        raise RuntimeError(f"the pipeline no longer names {sorted(wanted - user_functions)}")
    for path in sorted(user_functions):
        if not callable(_import_by_path(path)):
            raise RuntimeError(f"{path} is not callable")
    importlib.import_module(METRICS_MODULE)
    return (f"{pipeline_paths} executor classes of {len(pipeline.components)} pipeline nodes and "
            f"{len(CLUSTER_EXECUTORS)} cluster ones, "
            f"{', '.join(sorted(user_functions))}, {METRICS_MODULE}")


def check_artifact_types() -> str:
    import kubeflow
    from tfx.types.artifact import Artifact

    titles = [f"kubeflow.{name}" for name in kubeflow.ARTIFACT_TYPES]
    for title in titles:
        artifact_type = _import_by_path(title)
        if not (isinstance(artifact_type, type) and issubclass(artifact_type, Artifact)):
            raise RuntimeError(f"{title} is not a TFX artifact type")
    return ", ".join(titles)


def check_encoders() -> str:
    import numpy as np
    from PIL import Image

    from schema import encoders

    pixels = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    photo = io.BytesIO()
    Image.fromarray(pixels).save(photo, format="JPEG")
    image, ok = encoders.ImageEncoder().encode([photo.getvalue()])
    if image.shape != (1, encoders.IMAGE_DIM) or not ok.all() or not np.isfinite(image).all() or not image.any():
        raise RuntimeError(f"image encoder gave shape {image.shape}, ok {ok.tolist()}")
    text = encoders.TextEncoder().encode(["Men Navy Blue Cotton Shirt"])
    if text.shape != (1, encoders.TEXT_DIM) or not np.isfinite(text).all():
        raise RuntimeError(f"text encoder gave shape {text.shape}")
    return f"image encoder {image.shape[1]}-d on a generated JPEG, text encoder {text.shape[1]}-d"


def check_beam(boot: Optional[str], version: Optional[str]) -> str:
    import apache_beam

    done = [f"apache-beam {apache_beam.__version__}"]
    if version and apache_beam.__version__ != version:
        raise RuntimeError(f"apache-beam {apache_beam.__version__} installed, the boot program is from {version}")
    if boot:
        if not (os.path.isfile(boot) and os.access(boot, os.X_OK)):
            raise RuntimeError(f"Beam boot program {boot} missing or not executable")
        done.append(f"boot program {boot}")
    return ", ".join(done)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from kubeflow.settings import IMAGE_CODE_ROOT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beam-boot", help="path of the Beam SDK boot program to check (in the image)")
    parser.add_argument("--beam-version", help="Beam version the boot program comes from")
    parser.add_argument("--installed", action="store_true",
                        help="check that the project runs from its installed distribution, data files included")
    parser.add_argument("--in-image", action="store_true",
                        help="--installed, and installed where compiled pipelines expect it (IMAGE_CODE_ROOT)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # Google clients on Python version support
    checks: list[tuple[str, Callable[[], str]]] = [
        ("python", check_python),
        *([("installed package", lambda: check_installed(IMAGE_CODE_ROOT if args.in_image else None))]
          if args.installed or args.in_image else []),
        ("entry points", check_entry_points),
        ("executors", check_executors_and_user_functions),
        ("artifact types", check_artifact_types),
        ("encoders", check_encoders),
        ("beam", lambda: check_beam(args.beam_boot, args.beam_version)),
    ]
    start = time.time()
    for name, check in checks:
        try:
            print(f"ok: {name}: {check()}", flush=True)
        except Exception as err:  # one line saying which check failed and why
            print(f"error: image smoke test, {name}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            return 1
    print(f"image smoke test passed in {time.time() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
