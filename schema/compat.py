"""Every place the project leans on a library's internals, each behind a version check.

A workaround here was written against one release of the library it touches; before it
acts, it checks that release is the one installed and otherwise stops with an error that
names the workaround, the version it was written for and the version found, instead of
silently doing the wrong thing on an upgrade. tests/test_compat.py has one test per
workaround (the behaviour it relies on, and the refusal on another version).

The workarounds:
- `kubeflow_artifact_titles`: TFX's KFP v2 compiler, `compiler_utils.get_artifact_schema`
  swapped while compiling (kubeflow/compiler.py).
- `split_anomalies`: where TFX's ExampleValidator writes a split's anomalies
  (components/strict_example_validator).
- `respecified`, `init_with_spec`: a standard component re-specified with extra inputs,
  skipping the standard constructor that would build its own spec (TaxonomyTransform,
  TaxonomyTrainer, SafePusher, CatalogExampleGen).
- `adam_moments`: the two moment slots of a Keras 2 Adam (trainer/optimizers.py, LazyAdam).
- `vertex_executor_class_hook`: the Vertex AI trainer's `_GetExecutorClass` hook
  (kubeflow/trainer_executor.py).
- `run_and_root`: an executor's pipeline run id and, from an output artifact's URI, the
  pipeline root (CatalogExampleGen keeps a failed run's rejects there).
- `tfx_component_event`: the log records in which TFX's LocalDagRunner says a component
  starts, ends or is served from the cache (components/run_console.py).
- `one_package_scan`: google-api-core's Python-version check scans every installed
  package's metadata once per Google package imported; one scan per process instead
  (pipeline.py, before TFX is imported).
- `keras_code_unconverted`: TensorFlow 2.16's AutoGraph leaves `keras` code alone but not
  `tf_keras`, the same Keras 2 under another name (trainer/run.py).

This is the bottom layer: it imports no project module, and each library only inside
the function that needs it.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import re
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

# The releases each workaround was written and tested against (a version prefix).
TESTED = {
    "tfx": "1.16.",
    "tf_keras": "2.16.",
    "tensorflow": "2.16.",
    "google-api-core": "2.29.",  # a distribution name: its version is read from the metadata
}


class CompatError(RuntimeError):
    """A workaround met a library release it was not written for."""


def installed_version(library: str) -> str:
    if "-" in library:  # a distribution, not a module: read its metadata, import nothing
        from importlib import metadata

        return metadata.version(library)
    return str(importlib.import_module(library).__version__)


def require(library: str, workaround: str, version: Optional[str] = None) -> None:
    """Raises CompatError unless `library` (or the given `version`) is the tested release."""
    tested = TESTED[library]
    version = version or installed_version(library)
    if not version.startswith(tested):
        raise CompatError(
            f"schema/compat.py: {workaround} was written for {library} {tested}x, and {library} {version} "
            f"is installed: check that workaround against the new release and update it (and TESTED)")


def _require_attribute(owner: Any, name: str, workaround: str) -> Any:
    value = getattr(owner, name, None)
    if value is None:
        raise CompatError(f"schema/compat.py: {workaround} needs {getattr(owner, '__name__', owner)}.{name}, "
                          f"which this release does not have: update the workaround")
    return value


# --- TFX's KFP v2 compiler: importable artifact titles -------------------------------

_KFP_TITLE = re.compile(r"^[a-z][a-z0-9-_]{2,20}[.][A-Z][a-zA-Z0-9-_]{2,49}$")
_TITLES = "the KFP artifact-title shim (compiler_utils.get_artifact_schema)"


@contextlib.contextmanager
def kubeflow_artifact_titles(title_for: Callable[[type], Optional[str]]) -> Iterator[None]:
    """While compiling, gives artifact types for which `title_for` answers that KFP title.

    TFX's KFP v2 compiler takes an artifact type's KFP schema title from its TYPE_NAME,
    which must then read `namespace.TypeName` ("Invalid custom artifact type name:
    RejectedRecords" otherwise). Renaming the types would rename them in the ML Metadata
    of local runs, so while compiling, the module-level `compiler_utils.get_artifact_schema`
    answers with an importable title for the project's own types; it is restored after.
    """
    import yaml

    require("tfx", _TITLES)
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    original = _require_attribute(compiler_utils, "get_artifact_schema", _TITLES)
    generic = Path(compiler_utils.__file__).parent / "artifact_types" / "Artifact.yaml"

    def get_artifact_schema(artifact_type):
        title = None if _KFP_TITLE.fullmatch(artifact_type.TYPE_NAME) else title_for(artifact_type)
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


# --- TFX's ExampleValidator: the anomalies it wrote ----------------------------------

_ANOMALIES = "reading ExampleValidator's per-split anomalies file"


def split_anomalies(anomalies_artifact: Any, split: str):
    """The Anomalies proto that TFX's ExampleValidator wrote for `split` into its
    ExampleAnomalies output (`Split-<split>/SchemaDiff.pb` in TFX 1.16)."""
    require("tfx", _ANOMALIES)
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.components.example_validator import executor as validator_executor
    from tfx.dsl.io import fileio
    from tfx.types import artifact_utils

    file_name = _require_attribute(validator_executor, "DEFAULT_FILE_NAME", _ANOMALIES)
    path = f"{artifact_utils.get_split_uri([anomalies_artifact], split)}/{file_name}"
    if not fileio.exists(path):
        raise CompatError(f"schema/compat.py: ExampleValidator wrote no {path}: {_ANOMALIES} needs an update")
    anomalies = anomalies_pb2.Anomalies()
    with fileio.open(path, "rb") as handle:
        anomalies.ParseFromString(handle.read())
    return anomalies


# --- Standard components re-specified ------------------------------------------------

_RESPEC = "re-specifying a standard component (its constructor skipped)"


def respecified(plain: Any, spec_cls: type, extra: Mapping[str, Any]) -> Any:
    """`spec_cls` (a subclass of `plain`'s spec class with more inputs or parameters) filled
    from the standard component `plain` that its own constructor built, so that every
    standard option keeps its checks, plus `extra` (None values left out).

    The outputs are fresh channels: `plain`'s are bound to its own node, which is never
    part of the pipeline.
    """
    require("tfx", _RESPEC)
    from tfx.types.channel import Channel

    base = plain.spec
    if not issubclass(spec_cls, type(base)):
        raise TypeError(f"{spec_cls.__name__} does not extend {type(base).__name__}")
    outputs = {}
    for key, channel in base.outputs.items():
        fresh = Channel(type=channel.type)
        fresh.matching_channel_name = getattr(channel, "matching_channel_name", None)
        outputs[key] = fresh
    kwargs = {**base.exec_properties, **base.inputs, **outputs, **extra}
    return spec_cls(**{k: v for k, v in kwargs.items() if v is not None})


def init_with_spec(component: Any, standard_cls: type, spec: Any) -> None:
    """Initialises `component` (a subclass of the standard component `standard_cls`) from a
    ready `spec`, skipping `standard_cls.__init__`, which would build its own spec, but
    keeping its class attributes (driver, executor spec)."""
    require("tfx", _RESPEC)
    if standard_cls not in type(component).__mro__:
        raise TypeError(f"{type(component).__name__} is not a {standard_cls.__name__}")
    super(standard_cls, component).__init__(spec=spec)


# --- Keras 2 optimizer and tracking internals ----------------------------------------

_SLOTS = "LazyAdam's access to Adam's moment slots"


def check_adam_moments() -> None:
    """Checks the tf_keras release, and that its Adam still keeps the moment slots where
    `adam_moments` reads them. Call it once, when the optimizer is made: `adam_moments`
    itself runs inside the traced training step, where it must stay a plain lookup."""
    import inspect

    require("tf_keras", _SLOTS)
    import tf_keras as keras

    _require_attribute(keras.optimizers.Adam, "_var_key", _SLOTS)
    build = inspect.getsource(keras.optimizers.Adam.build)
    base = inspect.getsource(keras.optimizers.Optimizer._build_index_dict)
    if "self._momentums" not in build or "self._velocities" not in build or "self._index_dict" not in base:
        raise CompatError(f"schema/compat.py: tf_keras's Adam keeps its moments elsewhere: update {_SLOTS}")


def adam_moments(optimizer: Any, variable: Any) -> tuple[Any, Any]:
    """The first and second moment variables a built tf_keras Adam keeps for `variable`
    (checked by `check_adam_moments`)."""
    index = optimizer._index_dict[optimizer._var_key(variable)]
    return optimizer._momentums[index], optimizer._velocities[index]


# --- TFX's Vertex AI trainer extension ------------------------------------------------

_VERTEX_HOOK = "the Vertex AI trainer's _GetExecutorClass hook"


def vertex_executor_class_hook(executor_cls: type) -> type:
    """Class decorator for a subclass of TFX's Vertex AI GenericExecutor that overrides
    `_GetExecutorClass` (the executor class each training replica runs): checks the TFX
    release and that the base class still calls that hook."""
    require("tfx", _VERTEX_HOOK)
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

    if not issubclass(executor_cls, vertex_executor.GenericExecutor):
        raise TypeError(f"{executor_cls.__name__} is not a Vertex AI GenericExecutor")
    _require_attribute(vertex_executor.GenericExecutor, "_GetExecutorClass", _VERTEX_HOOK)
    if "_GetExecutorClass" not in vertex_executor.GenericExecutor.Do.__code__.co_names:
        raise CompatError(f"schema/compat.py: GenericExecutor.Do no longer calls _GetExecutorClass: "
                          f"update {_VERTEX_HOOK}")
    if "_GetExecutorClass" not in vars(executor_cls):
        raise TypeError(f"{executor_cls.__name__} does not override _GetExecutorClass")
    return executor_cls


# --- TFX's LocalDagRunner: the log lines that mark a component's start and end --------

_EVENTS = "reading component starts and ends from TFX's LocalDagRunner log records"
# The format strings TFX 1.16 logs (absl) around each node: local_dag_runner.py (start,
# end) and portable/launcher.py (a cached execution reused).
TFX_COMPONENT_EVENTS = {
    "Component %s is running.": "start",
    "Component %s is finished.": "end",
    "A cached execution %d is used.": "cached",
}


def tfx_component_event(record: Any) -> Optional[tuple[str, Any]]:
    """("start" | "end", node id) or ("cached", execution id) for a log record of TFX's
    local runner that marks one; None for any other record."""
    kind = TFX_COMPONENT_EVENTS.get(record.msg) if isinstance(record.msg, str) else None
    if kind is None or not isinstance(record.args, tuple) or len(record.args) != 1:
        return None
    return kind, record.args[0]


def check_tfx_component_events() -> None:
    """Checks the TFX release, and that its local runner and launcher still log the
    messages `tfx_component_event` recognises."""
    import inspect

    require("tfx", _EVENTS)
    from tfx.orchestration.local import local_dag_runner
    from tfx.orchestration.portable import launcher

    source = inspect.getsource(local_dag_runner) + inspect.getsource(launcher)
    missing = [message for message in TFX_COMPONENT_EVENTS if repr(message) not in source]
    if missing:
        raise CompatError(f"schema/compat.py: TFX no longer logs {missing}: update {_EVENTS}")


# --- One scan of the installed packages per process -----------------------------------

_PACKAGE_SCAN = "one installed-package scan per process for google-api-core's Python-version check"


def one_package_scan() -> None:
    """google-api-core 2.29 checks the Python version as each Google package is imported,
    and names the package in its warning through `importlib.metadata.packages_distributions()`,
    a read of every installed distribution's metadata, once per Google package: `tfx.v1`
    imports Vertex AI's client and some 15 of them, seconds of every command's start-up.
    The installed packages do not change while a command runs, so the scan is kept for
    the process. It relies on google-api-core looking the function up on the module at
    each call (`metadata.packages_distributions()`), which tests/test_compat.py checks."""
    from importlib import metadata

    require("google-api-core", _PACKAGE_SCAN)
    if not hasattr(metadata.packages_distributions, "cache_info"):
        metadata.packages_distributions = functools.lru_cache(maxsize=1)(metadata.packages_distributions)


# --- AutoGraph and tf_keras ------------------------------------------------------------

_KERAS_UNCONVERTED = "AutoGraph leaves tf_keras code unconverted, as it does keras code"


def keras_code_unconverted() -> None:
    """TensorFlow 2.16's AutoGraph has a rule not to convert `keras` code, which is written
    to run as it is inside a `tf.function`, but Keras 2 now lives in `tf_keras`, which no
    rule names. So the first call of every Keras train, test and predict function re-parses
    and rewrites the Python source of Keras' whole fit loop, optimizer, losses and metrics:
    seconds to tens of seconds before a model's first batch (BENCHMARKS.md, Pipeline scale).
    This adds the same rule for `tf_keras`, in front of the others; the project's own code
    is still converted. It relies on AutoGraph reading `config.CONVERSION_RULES` at each
    conversion, which tests/test_compat.py checks."""
    require("tensorflow", _KERAS_UNCONVERTED)
    require("tf_keras", _KERAS_UNCONVERTED)
    from tensorflow.python.autograph.core import config, config_lib

    rules = _require_attribute(config, "CONVERSION_RULES", _KERAS_UNCONVERTED)
    if not any(isinstance(r, config_lib.DoNotConvert) and r.matches("tf_keras") for r in rules):
        config.CONVERSION_RULES = (config_lib.DoNotConvert("tf_keras"),) + tuple(rules)


# --- A TFX executor's run id and the pipeline root ------------------------------------

_RUN_AND_ROOT = "an executor's run id (its _context) and the root above an output URI"


def run_and_root(executor: Any, output_uri: str) -> tuple[Optional[str], str]:
    """(the pipeline run id the executor was given, or None outside a runner; the pipeline
    root holding `output_uri`). TFX 1.16 writes outputs at
    `<root>/<node>/<output>/<execution id>` and keeps the executor's context in `_context`."""
    import os

    require("tfx", _RUN_AND_ROOT)
    context = getattr(executor, "_context", None)
    run = getattr(context, "pipeline_run_id", None) if context is not None else None
    root = os.path.dirname(os.path.dirname(os.path.dirname(output_uri.rstrip("/"))))
    return run, root
