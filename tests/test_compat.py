"""schema/compat.py: each workaround does what the project relies on with the installed
libraries, and every one refuses a release it was not written for."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from schema import compat


@pytest.mark.parametrize("library", sorted(compat.TESTED))
def test_installed_releases_are_the_tested_ones_and_another_is_refused(library):
    compat.require(library, "a workaround")  # what is installed is what was tested
    with pytest.raises(compat.CompatError, match=rf"a workaround was written for {library} .*99\.0\.0 is installed"):
        compat.require(library, "a workaround", version="99.0.0")


def test_every_workaround_checks_the_release(monkeypatch):
    """With the installed release reported as another one, each workaround stops before
    it touches the library."""
    monkeypatch.setattr(compat, "installed_version", lambda library: "99.0.0")
    calls = [
        lambda: compat.kubeflow_artifact_titles(lambda t: None).__enter__(),
        lambda: compat.split_anomalies(object(), "train"),
        lambda: compat.respecified(object(), object, {}),
        lambda: compat.init_with_spec(object(), object, None),
        compat.check_adam_moments,
        lambda: compat.vertex_executor_class_hook(object),
        compat.check_tfx_component_events,
        lambda: compat.run_and_root(object(), "/root/Node/out/1"),
        compat.one_package_scan,
        compat.keras_code_unconverted,
    ]
    for call in calls:
        with pytest.raises(compat.CompatError, match="99.0.0 is installed"):
            call()


def test_one_package_scan_serves_google_api_cores_version_checks_from_one_scan(monkeypatch):
    """Each Google package's import-time Python-version check asks for the module ->
    distribution map; after `one_package_scan` the metadata is read once for all of them,
    and the answers (the package names in the warnings) are the same as without it."""
    import warnings
    from importlib import metadata

    from google.api_core import _python_version_support as version_support

    scans = []

    def counting_scan():
        scans.append(1)
        return {"google": ["google-api-core"], "tfx": ["tfx"]}

    monkeypatch.setattr(metadata, "packages_distributions", counting_scan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = [version_support._get_distribution_and_import_packages(p)[1] for p in ("google", "tfx", "google")]
        assert len(scans) == 3  # google-api-core's own behaviour: one scan per check
        compat.one_package_scan()
        assert [version_support._get_distribution_and_import_packages(p)[1]
                for p in ("google", "tfx", "google")] == names == ["google-api-core", "tfx", "google-api-core"]
        version_support.check_python_version(package="google")
    assert len(scans) == 4  # one scan for the four checks after it
    compat.one_package_scan()  # idempotent: the cached function is not wrapped again
    metadata.packages_distributions()
    assert len(scans) == 4


def test_keras_code_unconverted_leaves_tf_keras_to_run_as_written(monkeypatch):
    """AutoGraph converts tf_keras' fit loop until the rule is added; after it, tf_keras
    functions are left alone, the project's own functions are still converted, and a Keras
    model still trains inside `tf.function`."""
    import tensorflow as tf
    import tf_keras as keras
    from tensorflow.python.autograph.core import config
    from tensorflow.python.autograph.impl import conversion

    from trainer import model as project_module

    # TensorFlow's own rules (another test's run_fn may have added ours); restored afterwards.
    monkeypatch.setattr(config, "CONVERSION_RULES",
                        tuple(r for r in config.CONVERSION_RULES if not r.matches("tf_keras")))
    train_step = keras.Model.train_step
    assert not conversion.is_allowlisted(train_step)  # TF 2.16 on its own: converted
    compat.keras_code_unconverted()
    compat.keras_code_unconverted()  # idempotent: the rule is added once
    assert sum("tf_keras" in str(r) for r in config.CONVERSION_RULES) == 1
    assert conversion.is_allowlisted(train_step)
    assert not conversion.is_allowlisted(project_module.build_model)
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,))])
    model.compile(optimizer="adam", loss="mse")
    x = tf.random.stateless_normal((16, 3), seed=(1, 2))
    history = model.fit(x, tf.zeros((16, 2)), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_kfp_titles_for_project_types_and_the_compiler_restored():
    from tfx.orchestration.kubeflow.v2 import compiler_utils
    from tfx.types import standard_artifacts
    from tfx.types.artifact import Artifact

    class Thing(Artifact):
        TYPE_NAME = "Thing"

    original = compiler_utils.get_artifact_schema
    with compat.kubeflow_artifact_titles(lambda t: "kubeflow.Thing" if t is Thing else None):
        schema = yaml.safe_load(compiler_utils.get_artifact_schema(Thing))
        assert schema["title"] == "kubeflow.Thing" and schema["type"] == "object"
        # First-party types keep TFX's own schema.
        assert yaml.safe_load(compiler_utils.get_artifact_schema(standard_artifacts.Model))["title"] == "tfx.Model"
    assert compiler_utils.get_artifact_schema is original


def test_split_anomalies_reads_what_tfx_example_validator_wrote(tmp_path):
    """The anomalies read back are those TFDV finds for that split's statistics."""
    import tensorflow_data_validation as tfdv
    from tfx.components.example_validator import executor as tfx_validator
    from tfx.components.statistics_gen import stats_artifact_utils

    from tests.fixtures.statistics import CLEAN, UNEXPECTED_GENDER, anomalies_artifact, schema_artifact, statistics_artifact

    stats = statistics_artifact(tmp_path / "stats", {"train": CLEAN, "eval": UNEXPECTED_GENDER})
    schema = schema_artifact(tmp_path / "schema")
    anomalies = anomalies_artifact(tmp_path / "anomalies")
    tfx_validator.Executor().Do({"statistics": [stats], "schema": [schema]}, {"anomalies": [anomalies]},
                                {"exclude_splits": "[]"})
    for split in ("train", "eval"):
        expected = tfdv.validate_statistics(stats_artifact_utils.load_statistics(stats, split).proto(),
                                            tfdv.load_schema_text(str(tmp_path / "schema" / "schema.pbtxt")))
        assert set(compat.split_anomalies(anomalies, split).anomaly_info) == set(expected.anomaly_info)
    assert set(compat.split_anomalies(anomalies, "eval").anomaly_info) == {"gender"}
    (tmp_path / "anomalies" / "Split-eval" / tfx_validator.DEFAULT_FILE_NAME).unlink()  # a layout it no longer writes
    with pytest.raises(compat.CompatError, match="wrote no"):
        compat.split_anomalies(anomalies, "eval")


def test_a_standard_component_respecified_keeps_its_options_and_gets_fresh_outputs():
    from tfx.components import Pusher
    from tfx.proto import pusher_pb2
    from tfx.types import channel_utils, standard_artifacts, standard_component_specs
    from tfx.types.component_spec import ChannelParameter

    class PlusSpec(standard_component_specs.PusherSpec):
        INPUTS = {**standard_component_specs.PusherSpec.INPUTS,
                  "extra": ChannelParameter(type=standard_artifacts.Examples, optional=True)}

    class PlusPusher(Pusher):
        SPEC_CLASS = PlusSpec

        def __init__(self, extra, **kwargs):
            self.plain = Pusher(**kwargs)
            compat.init_with_spec(self, Pusher, compat.respecified(self.plain, PlusSpec, {"extra": extra}))

    model = channel_utils.as_channel([standard_artifacts.Model()])
    extra = channel_utils.as_channel([standard_artifacts.Examples()])
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(base_directory="/x"))
    pusher = PlusPusher(extra, model=model, push_destination=destination).with_id("PlusPusher")
    assert pusher.inputs["extra"] is extra and pusher.inputs["model"] is model
    assert "/x" in str(pusher.exec_properties["push_destination"])  # the standard constructor's serialising
    assert type(pusher.spec) is PlusSpec and pusher.executor_spec.executor_class is Pusher.EXECUTOR_SPEC.executor_class
    fresh = pusher.outputs["pushed_model"]
    assert fresh is not pusher.plain.outputs["pushed_model"] and fresh.producer_component_id == "PlusPusher"
    # The standard constructor's checks still run: a Pusher needs a model.
    with pytest.raises(ValueError):
        PlusPusher(extra, push_destination=destination)
    with pytest.raises(TypeError, match="does not extend"):
        compat.respecified(pusher.plain, standard_component_specs.TrainerSpec, {})
    with pytest.raises(TypeError, match="is not a Trainer"):
        from tfx.components import Trainer

        compat.init_with_spec(pusher, Trainer, pusher.spec)


def test_adam_moments_are_the_slots_adam_updates():
    import tensorflow as tf
    import tf_keras as keras

    optimizer = keras.optimizers.Adam(0.1, beta_1=0.9, beta_2=0.99)
    variable = tf.Variable([1.0, 2.0, 3.0])
    gradient = tf.constant([0.5, -1.0, 2.0])
    optimizer.apply_gradients([(gradient, variable)])
    compat.check_adam_moments()
    m, v = compat.adam_moments(optimizer, variable)
    np.testing.assert_allclose(m.numpy(), 0.1 * gradient.numpy(), rtol=1e-6)
    np.testing.assert_allclose(v.numpy(), 0.01 * gradient.numpy() ** 2, rtol=1e-6)


def test_vertex_executor_class_hook_checks_the_override():
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

    class Replica:
        pass

    @compat.vertex_executor_class_hook
    class Overriding(vertex_executor.GenericExecutor):
        def _GetExecutorClass(self):
            return Replica

    assert Overriding()._GetExecutorClass() is Replica
    with pytest.raises(TypeError, match="does not override"):
        compat.vertex_executor_class_hook(type("Plain", (vertex_executor.GenericExecutor,), {}))
    with pytest.raises(TypeError, match="not a Vertex AI GenericExecutor"):
        compat.vertex_executor_class_hook(Replica)


def test_tfx_component_events_are_what_the_local_runner_logs():
    import logging

    compat.check_tfx_component_events()  # TFX 1.16's runner and launcher log these formats

    def record(msg, args):
        return logging.LogRecord("absl", logging.INFO, "x.py", 1, msg, args, None)

    assert compat.tfx_component_event(record("Component %s is running.", ("Evaluator",))) == ("start", "Evaluator")
    assert compat.tfx_component_event(record("Component %s is finished.", ("Evaluator",))) == ("end", "Evaluator")
    assert compat.tfx_component_event(record("A cached execution %d is used.", (12,))) == ("cached", 12)
    assert compat.tfx_component_event(record("Component Evaluator is running.", ())) is None
    assert compat.tfx_component_event(record("Going to run a new execution %d", (3,))) is None


def test_run_and_root_from_the_executor_context_and_tfx_output_layout(tmp_path):
    from tfx.dsl.components.base import base_executor

    class Plain(base_executor.BaseExecutor):
        def Do(self, input_dict, output_dict, exec_properties):
            pass

    uri = f"{tmp_path}/CatalogExampleGen/rejected/7"
    given = Plain(base_executor.BaseExecutor.Context(pipeline_run_id="run-1"))
    assert compat.run_and_root(given, uri) == ("run-1", str(tmp_path))
    assert compat.run_and_root(Plain(), uri + "/") == (None, str(tmp_path))
