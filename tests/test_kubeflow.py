"""Kubeflow Pipelines / Vertex AI: the compiled specs of both targets, and `submit`.

Offline and on CPU: compiling reads no data, the KFP API server is a stub on 127.0.0.1,
and Vertex AI's PipelineJob is replaced by a recorder. That the compiled pipeline really
runs is tests/test_compiled_pipeline.py's job; these check what each backend is given.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubeflow import compiler, settings as kubeflow_settings, submit, tfjob
from kubeflow.settings import KubeflowSettings

IMAGE = "registry.example/categorize-pipeline:0123456789ab"  # a git-SHA tag
WORKERS = 3
EXTRA_BEAM_ARG = "--max_num_workers=4"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Compiles the fashion pipeline once: (settings, config, local pipeline, job dict, json path)."""
    import pipeline

    tmp = tmp_path_factory.mktemp("kfp")
    settings = KubeflowSettings(
        project="test-project",
        region="europe-west4",
        bucket="gs://test-bucket",
        catalog=str(tmp / "catalog"),  # compile reads no data
        image=IMAGE,
        train_workers=WORKERS,
        machine_type="n1-standard-4",
        beam_args=(EXTRA_BEAM_ARG,),
    )
    config = compiler.cluster_pipeline_config("fashion", settings, preset="small")
    output = tmp / "pipeline.json"
    job = compiler.compile_pipeline(config, settings, output)
    local = pipeline.create_pipeline(config)
    return settings, config, local, job, output


@pytest.fixture(scope="module")
def compiled_kfp(tmp_path_factory):
    """The same pipeline compiled for open-source KFP, on a small real catalog folder."""
    tmp = tmp_path_factory.mktemp("kfp_target")
    catalog = tmp / "catalog"
    (catalog / "images").mkdir(parents=True)
    (catalog / "products.csv").write_text("id,productDisplayName\n1,Blue tee\n")
    (catalog / "images" / "1.jpg").write_bytes(b"not decoded by compile or submit")
    settings = KubeflowSettings(target="kfp", project="test-project", bucket="gs://test-bucket",
                                catalog=str(catalog), image=IMAGE)
    config = compiler.cluster_pipeline_config("fashion", settings, preset="small")
    output = tmp / "pipeline.json"
    return settings, config, compiler.compile_pipeline(config, settings, output), output


def _spec(job):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    return json_format.Parse(json.dumps(job["pipelineSpec"]), pipeline_spec_pb2.PipelineSpec())


def _node_of(task_name: str, node_ids: set[str]) -> str:
    # The latest-blessed-model resolver compiles to two tasks: <id>-model-blessing-resolver
    # and <id>-model-resolver.
    if task_name in node_ids:
        return task_name
    owners = [n for n in node_ids if task_name.startswith(n + "-")]
    assert len(owners) == 1, f"task {task_name} maps to no single pipeline node: {owners}"
    return owners[0]


def _parameter(spec, task_name: str, name: str) -> str:
    """A task's constant string parameter (TFX writes the legacy `constantValue` form)."""
    value = spec.root.dag.tasks[task_name].inputs.parameters[name].runtime_value
    return value.constant_value.string_value or value.constant.string_value


def _executors(spec):
    """The deployment spec (a Struct in PipelineSpec) as a typed PipelineDeploymentConfig."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    deployment = json_format.ParseDict(
        json_format.MessageToDict(spec.deployment_spec), pipeline_spec_pb2.PipelineDeploymentConfig()
    )
    return deployment.executors


def _executor(spec, task_name: str):
    component = spec.root.dag.tasks[task_name].component_ref.name
    return _executors(spec)[spec.components[component].executor_label]


def test_spec_is_a_kfp_pipeline_spec(compiled):
    settings, config, _, job, output = compiled
    assert json.loads(output.read_text()) == job
    spec = _spec(job)
    assert spec.pipeline_info.name == config.pipeline_name == "categorize-fashion"
    assert spec.schema_version and spec.sdk_version.startswith("tfx-")
    assert job["runtimeConfig"]["gcsOutputDirectory"] == config.pipeline_root == "gs://test-bucket/pipelines/fashion"


def test_every_component_present_with_the_same_dependencies(compiled):
    _, _, local, job, _ = compiled
    spec = _spec(job)
    node_ids = {c.id for c in local.components}
    tasks = spec.root.dag.tasks
    assert {_node_of(name, node_ids) for name in tasks} == node_ids

    local_edges = {(up.id, c.id) for c in local.components for up in c.upstream_nodes}
    spec_edges = set()
    for name, task in tasks.items():
        upstream = set(task.dependent_tasks)
        upstream |= {a.task_output_artifact.producer_task for a in task.inputs.artifacts.values()
                     if a.HasField("task_output_artifact")}
        for up in upstream:
            edge = (_node_of(up, node_ids), _node_of(name, node_ids))
            if edge[0] != edge[1]:  # the resolver's two halves
                spec_edges.add(edge)
    assert spec_edges == local_edges
    # The explicit ordering edge (anomalies stop the run before Transform) survives.
    assert ("StrictExampleValidator", "TaxonomyTransform") in spec_edges


def test_every_executor_runs_the_configured_image(compiled):
    _, _, local, job, _ = compiled
    spec = _spec(job)
    containers = {name: e.container for name, e in _executors(spec).items()
                  if e.HasField("container")}
    # Every node but the resolver (which is a metadata query, not a container) runs the image.
    assert len(containers) == len(local.components) - 1
    assert {c.image for c in containers.values()} == {IMAGE}
    assert all(list(c.command[:3]) == ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
               for c in containers.values())


def test_trainer_launches_vertex_training_with_worker_pools(compiled):
    _, _, _, job, _ = compiled
    spec = _spec(job)
    container = _executor(spec, "TaxonomyTrainer").container
    args = list(container.args)
    assert args[args.index("--executor_class_path") + 1] == \
        "kubeflow.trainer_executor.VertexTaxonomyTrainerExecutor"

    custom_config = json.loads(_parameter(spec, "TaxonomyTrainer", "custom_config"))
    assert custom_config["ai_platform_enable_vertex"] is True
    assert custom_config["ai_platform_vertex_region"] == "europe-west4"
    training = custom_config["ai_platform_training_args"]
    assert training["project"] == "test-project"
    pools = training["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, WORKERS - 1]
    assert {p["container_spec"]["image_uri"] for p in pools} == {IMAGE}
    assert {p["machine_spec"]["machine_type"] for p in pools} == {"n1-standard-4"}
    # The pipeline's own trainer settings are still there for run_fn.
    assert custom_config["preset"]["name"] == "small" and custom_config["bag_of_words"] is False


def test_vertex_trainer_executor_hands_the_taxonomy_to_the_replicas(monkeypatch):
    from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor
    from tfx.types import standard_artifacts
    from tfx.utils import json_utils

    from components.artifacts import CategoryTaxonomy
    from kubeflow.trainer_executor import VertexTaxonomyTrainerExecutor

    launched = {}

    def fake_start(input_dict, output_dict, exec_properties, executor_class_path, job_args, job_id,
                   job_labels, enable_vertex, vertex_region):
        launched.update(inputs=input_dict, exec_properties=exec_properties, executor=executor_class_path,
                        job_args=job_args, enable_vertex=enable_vertex, region=vertex_region)

    monkeypatch.setattr(vertex_executor.runner, "start_cloud_training", fake_start)
    taxonomy, examples = CategoryTaxonomy(), standard_artifacts.Examples()
    taxonomy.uri, examples.uri = "gs://b/taxonomy/1", "gs://b/examples/1"
    settings = KubeflowSettings(project="p", region="europe-west4", image=IMAGE, train_workers=2)
    custom_config = {"preset": {"name": "small"}, **settings.vertex_training_config()}
    VertexTaxonomyTrainerExecutor().Do(
        {"taxonomy": [taxonomy], "examples": [examples]},
        {"model": [standard_artifacts.Model()]},
        {"custom_config": json_utils.dumps(custom_config)},
    )
    assert set(launched["inputs"]) == {"examples"}
    forwarded = json_utils.loads(launched["exec_properties"]["custom_config"])
    assert forwarded["taxonomy_uri"] == "gs://b/taxonomy/1" and forwarded["preset"] == {"name": "small"}
    # Every replica runs the replica executor on those inputs (no taxonomy input needed).
    assert launched["executor"] == "components.taxonomy_aware.executor.ReplicaTrainerExecutor"
    assert launched["enable_vertex"] is True and launched["region"] == "europe-west4"
    assert [p["replica_count"] for p in launched["job_args"]["job_spec"]["worker_pool_specs"]] == [1, 1]


def test_only_the_candidate_trainer_trains_on_vertex(compiled):
    _, _, _, job, _ = compiled
    spec = _spec(job)
    args = list(_executor(spec, "BagOfWordsTrainer").container.args)
    assert "kubeflow.trainer_executor.VertexTaxonomyTrainerExecutor" not in args
    custom_config = json.loads(_parameter(spec, "BagOfWordsTrainer", "custom_config"))
    assert "ai_platform_training_args" not in custom_config and custom_config["bag_of_words"] is True


def test_vertex_target_keeps_the_resolver_and_fingerprints_photos(compiled):
    _, _, _, job, _ = compiled
    spec = _spec(job)
    assert spec.schema_version == "2.0.0" and job["labels"]["categorize-target"] == "vertex"
    resolvers = [name for name, e in _executors(spec).items() if e.HasField("resolver")]
    assert len(resolvers) == 2  # latest blessed: the blessing query, then its model
    hook = _executor(spec, "CatalogExampleGen").container.lifecycle.pre_cache_check
    assert list(hook.command) == ["python", "-m", compiler.CATALOG_DRIVER]


def test_kfp_target_runs_without_resolvers_on_spec_2_1(compiled_kfp):
    settings, config, job, _ = compiled_kfp
    spec = _spec(job)
    assert spec.schema_version == "2.1.0" and job["labels"]["categorize-target"] == "kfp"
    assert not [name for name, e in _executors(spec).items() if e.HasField("resolver")]
    assert submit.problems_for(job, "kfp") == []
    tasks = spec.root.dag.tasks
    for name, task in tasks.items():
        for param, value in task.inputs.parameters.items():
            assert not value.runtime_value.HasField("constant_value"), f"{name}.{param} uses legacy constantValue"
    # The incumbent is the newest pushed version, where `categorize` finds it.
    pushed_dir = tasks["BaselineSelector"].inputs.parameters["pushed_models_dir"].runtime_value.constant.string_value
    assert pushed_dir == config.push_dir == "gs://test-bucket/serving/fashion"
    # The catalog fingerprint is a pipeline parameter that `submit` fills in.
    assert tasks["CatalogExampleGen"].inputs.parameters["catalog_fingerprint"].component_input_parameter == \
        "catalog_fingerprint"
    params = submit.catalog_parameters(job)
    assert params["catalog_fingerprint"].startswith("catalog files:2,")
    # Training happens inside the Trainer step unless Vertex AI training is asked for.
    assert "kubeflow.trainer_executor.VertexTaxonomyTrainerExecutor" not in \
        list(_executor(spec, "TaxonomyTrainer").container.args)


def test_compile_refuses_a_mutable_image(tmp_path, capsys):
    import pipeline

    code = pipeline.main(["compile", "--output", str(tmp_path / "spec.json"), "--image", "registry.example/x:latest",
                          "--catalog", str(tmp_path)])
    assert code == 2 and not (tmp_path / "spec.json").exists()
    assert "can change under a cached step" in capsys.readouterr().err


def test_beam_components_get_the_dataflow_args(compiled):
    from tfx.dsl.components.base.executor_spec import BeamExecutorSpec

    _, _, local, job, _ = compiled
    spec = _spec(job)
    beam_nodes = [c.id for c in local.components if isinstance(c.executor_spec, BeamExecutorSpec)]
    assert {"CatalogExampleGen", "StatisticsGen", "TaxonomyGen", "TaxonomyTransform", "Evaluator"} <= set(beam_nodes)
    expected = {
        "--runner=DataflowRunner",
        "--project=test-project",
        "--region=europe-west4",
        "--temp_location=gs://test-bucket/tmp",
        f"--sdk_container_image={IMAGE}",
        EXTRA_BEAM_ARG,
    }
    for node in beam_nodes:
        args = set(_executor(spec, node).container.args)
        assert expected <= args, node
        assert not any(a.startswith("--direct_") for a in args), node  # no local DirectRunner args


def test_custom_artifact_types_resolve_in_the_container(compiled):
    import yaml
    from tfx.utils import import_utils

    from components.artifacts import CategoryTaxonomy, RejectedRecords, WordMapperArtifact

    _, _, _, job, _ = compiled
    spec = _spec(job)
    taxonomy = spec.components["TaxonomyTrainer"].input_definitions.artifacts["taxonomy"]
    rejected = spec.components["CatalogExampleGen"].output_definitions.artifacts["rejected"]
    mapper = spec.components["TaxonomyTrainer"].input_definitions.artifacts["word_mapper"]
    for artifact_spec, cls in ((taxonomy, CategoryTaxonomy), (rejected, RejectedRecords),
                               (mapper, WordMapperArtifact)):
        title = yaml.safe_load(artifact_spec.artifact_type.instance_schema)["title"]
        assert title == f"kubeflow.{cls.__name__}"
        # The Vertex / KFP v2 entrypoint imports the artifact class from the title.
        assert import_utils.import_class_by_path(title) is cls
    # Local runs keep their ML Metadata type names.
    assert CategoryTaxonomy.TYPE_NAME == "CategoryTaxonomy"


def test_paths_into_the_checkout_point_into_the_image(compiled):
    settings, _, _, job, output = compiled
    spec = _spec(job)
    assert _parameter(spec, "ImportSchemaGen", "schema_file") == f"{settings.code_root}/schema/curated/fashion.pbtxt"
    assert str(kubeflow_settings.PROJECT_ROOT) not in output.read_text()


def test_settings_from_flags_environment_and_defaults():
    defaults = KubeflowSettings.from_env({})
    sha = kubeflow_settings.git_sha()
    assert sha and defaults.image == f"gcr.io/YOUR_PROJECT/categorize-pipeline:{sha}"
    assert kubeflow_settings.is_immutable_image(defaults.image)
    assert set(defaults.placeholders()) == {"project", "bucket", "image"}
    assert (defaults.target, defaults.vertex_training) == ("vertex", True)
    assert KubeflowSettings(target="kfp").vertex_training is False
    env = {"GCP_PROJECT": "p", "GCS_BUCKET": "gs://b/", "TRAIN_WORKERS": "4", "PIPELINE_IMAGE": "img",
           "BEAM_ARGS": "--a=1 --b=2", "VERTEX_TRAINING": "0"}
    settings = KubeflowSettings.from_env(env, image="flag-img", region=None)
    assert (settings.project, settings.bucket, settings.image, settings.train_workers) == ("p", "gs://b", "flag-img", 4)
    assert settings.beam_args == ("--a=1", "--b=2") and settings.vertex_training is False
    assert settings.pipeline_root_for("fashion") == "gs://b/pipelines/fashion"
    assert [p["replica_count"] for p in settings.worker_pool_specs()] == [1, 3]
    assert [p["replica_count"] for p in KubeflowSettings(train_workers=1).worker_pool_specs()] == [1]
    assert KubeflowSettings(beam_runner="DirectRunner").beam_pipeline_args()[0] == "--runner=DirectRunner"
    with pytest.raises(ValueError):
        KubeflowSettings(train_workers=0)


def test_tfjob_manifest_has_a_chief_and_n_minus_1_workers():
    manifest = tfjob.tfjob_manifest(KubeflowSettings(image=IMAGE, train_workers=3), '{"in": 1}', '{"out": 1}', "{}")
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert manifest["kind"] == "TFJob"
    assert (replicas["Chief"]["replicas"], replicas["Worker"]["replicas"]) == (1, 2)
    container = replicas["Worker"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "tfx.scripts.run_executor"]
    assert "--executor_class_path=components.taxonomy_aware.executor.TrainerExecutor" in container["args"]
    assert {e["name"]: e["value"] for e in container["env"]}["TFX_INPUTS"] == '{"in": 1}'
    single = tfjob.tfjob_manifest(KubeflowSettings(image=IMAGE, train_workers=1), "{}", "{}", "{}")
    assert set(single["spec"]["tfReplicaSpecs"]) == {"Chief"}


def test_compile_command(tmp_path, capsys):
    import pipeline

    output = tmp_path / "spec.json"
    code = pipeline.main([
        "compile", "--output", str(output), "--image", IMAGE, "--train-workers", "2",
        "--project", "cli-project", "--bucket", "gs://cli-bucket", "--catalog", str(tmp_path / "catalog"),
        "--preset", "small", "--beam-arg=--max_num_workers=2",
    ])
    assert code == 0
    job = json.loads(output.read_text())
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://cli-bucket/pipelines/fashion"
    spec = _spec(job)
    custom_config = json.loads(_parameter(spec, "TaxonomyTrainer", "custom_config"))
    pools = custom_config["ai_platform_training_args"]["job_spec"]
    assert [p["replica_count"] for p in pools["worker_pool_specs"]] == [1, 1]
    assert "--max_num_workers=2" in _executor(spec, "StatisticsGen").container.args
    assert "Compiled categorize-fashion" in capsys.readouterr().out


# -- submit ---------------------------------------------------------------------------------
class _FakeKfp(BaseHTTPRequestHandler):
    """Just enough of the KFP v2beta1 REST API for kfp.Client's upload and run calls."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, payload, status=200):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        self.server.requests.append((self.command, path, body))
        existing = self.server.existing
        routes = {
            ("GET", "/apis/v2beta1/healthz"): {"multi_user": False},
            ("GET", "/apis/v2beta1/pipelines"):
                {"pipelines": [{"pipeline_id": "p-0", "display_name": "categorize-fashion"}], "total_size": 1}
                if existing else {},
            ("POST", "/apis/v2beta1/pipelines/upload"): {"pipeline_id": "p-1", "display_name": "categorize-fashion"},
            ("POST", "/apis/v2beta1/pipelines/upload_version"): {"pipeline_id": "p-0", "pipeline_version_id": "v-2"},
            ("GET", "/apis/v2beta1/pipelines/p-1/versions"):
                {"pipeline_versions": [{"pipeline_id": "p-1", "pipeline_version_id": "v-1"}], "total_size": 1},
            ("GET", "/apis/v2beta1/experiments"): {},
            ("POST", "/apis/v2beta1/experiments"): {"experiment_id": "e-1", "display_name": "exp"},
            ("POST", "/apis/v2beta1/runs"): {"run_id": "r-1", "experiment_id": "e-1"},
        }
        if (self.command, path) in routes:
            self._reply(routes[(self.command, path)])
        else:
            self._reply({"error": f"not found: {self.command} {path}"}, status=404)

    do_GET = do_POST = _handle


@pytest.fixture(params=[False, True], ids=["new-pipeline", "existing-pipeline"])
def fake_kfp(request):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeKfp)
    server.daemon_threads = True
    server.timeout = 5
    server.requests = []
    server.existing = request.param
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_submit_uploads_the_pipeline_and_starts_a_run(compiled_kfp, fake_kfp, capsys, monkeypatch):
    import pipeline

    package = compiled_kfp[3]
    monkeypatch.setenv("HOME", str(Path(package).parent))  # no ~/.config/kfp/context.json
    host = f"http://127.0.0.1:{fake_kfp.server_address[1]}"
    code = pipeline.main(["submit", "--host", host, "--package", str(package), "--experiment", "exp"])
    assert code == 0

    calls = [(method, path) for method, path, _ in fake_kfp.requests]
    upload = ("POST", "/apis/v2beta1/pipelines/upload_version" if fake_kfp.existing else "/apis/v2beta1/pipelines/upload")
    assert upload in calls and ("POST", "/apis/v2beta1/runs") in calls
    assert calls.index(upload) < calls.index(("POST", "/apis/v2beta1/runs"))
    uploaded = next(body for method, path, body in fake_kfp.requests if (method, path) == upload)
    assert b"categorize-fashion" in uploaded and b"TaxonomyTrainer" in uploaded and IMAGE.encode() in uploaded

    run = json.loads(next(body for method, path, body in fake_kfp.requests if (method, path) == ("POST", "/apis/v2beta1/runs")))
    pipeline_id, version_id = ("p-0", "v-2") if fake_kfp.existing else ("p-1", "v-1")
    assert run["pipeline_version_reference"] == {"pipeline_id": pipeline_id, "pipeline_version_id": version_id}
    assert run["experiment_id"] == "e-1"
    assert run["runtime_config"]["pipeline_root"] == "gs://test-bucket/pipelines/fashion"
    assert run["runtime_config"]["parameters"]["catalog_fingerprint"].startswith("catalog files:2,")
    assert f"{host}/#/runs/details/r-1" in capsys.readouterr().out


def test_submit_refuses_a_spec_its_backend_cannot_run(compiled, fake_kfp, capsys, monkeypatch):
    """A Vertex spec (resolvers, spec 2.0 parameters) is never sent to open-source KFP."""
    import pipeline

    monkeypatch.setenv("HOME", str(Path(compiled[4]).parent))
    host = f"http://127.0.0.1:{fake_kfp.server_address[1]}"
    code = pipeline.main(["submit", "--host", host, "--package", str(compiled[4])])
    assert code == 2 and fake_kfp.requests == []
    err = capsys.readouterr().err
    assert "no resolver executors" in err and "spec 2.1" in err and "--target kfp" in err


def test_submit_to_vertex(compiled, capsys, monkeypatch):
    from google.cloud import aiplatform

    import pipeline

    created = {}

    class FakePipelineJob:
        def __init__(self, **kwargs):
            created.update(kwargs)
            self.name = "run-123"

        def submit(self, service_account=None, experiment=None):
            created["submitted"] = (service_account, experiment)

    monkeypatch.setattr(aiplatform, "PipelineJob", FakePipelineJob)
    package = str(compiled[4])
    code = pipeline.main(["submit", "--vertex", "--package", package, "--project", "vx-project",
                          "--region", "europe-west4", "--service-account", "sa@vx-project.iam.gserviceaccount.com"])
    assert code == 0
    assert created["template_path"] == package
    assert (created["project"], created["location"]) == ("vx-project", "europe-west4")
    assert created["pipeline_root"] == "gs://test-bucket/pipelines/fashion"
    assert created["submitted"][0] == "sa@vx-project.iam.gserviceaccount.com"
    out = capsys.readouterr().out
    assert "console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/run-123" in out

    # A placeholder project is refused before anything is sent.
    monkeypatch.delenv("GCP_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    created.clear()
    assert pipeline.main(["submit", "--vertex", "--package", package]) == 2
    assert not created and "set the GCP project" in capsys.readouterr().err
