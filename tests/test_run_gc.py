"""`pipeline.py gc` (issue #21): old pipeline artifacts are deleted, on disk and in ML
Metadata, while everything the latest run used stays, so running it again is served from
the cache, and the latest blessed model (the next run's baseline) stays too.

A three-step TFX pipeline of tiny Python components keeps this fast while exercising
TFX's real cache and ML Metadata records."""

import os
from pathlib import Path

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import Examples, Model, ModelBlessing

from components.run_gc import collect_garbage
from components.run_status import list_runs
from schema.mlmd import open_store


@component
def Produce(size: Parameter[int], examples: OutputArtifact[Examples]):
    os.makedirs(examples.uri, exist_ok=True)
    Path(examples.uri, "data").write_bytes(b"x" * size)


@component
def Train(examples: InputArtifact[Examples], model: OutputArtifact[Model]):
    os.makedirs(model.uri, exist_ok=True)
    Path(model.uri, "weights").write_bytes(Path(examples.uri, "data").read_bytes())


@component
def Bless(model: InputArtifact[Model], bless: Parameter[int], blessing: OutputArtifact[ModelBlessing]):
    os.makedirs(blessing.uri, exist_ok=True)
    blessing.set_int_custom_property("blessed", bless)
    blessing.set_int_custom_property("current_model_id", model.id)


def _run(root, size, bless):
    produce = Produce(size=size)
    train = Train(examples=produce.outputs["examples"])
    judge = Bless(model=train.outputs["model"], bless=bless)
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="gc-test", pipeline_root=str(root), components=[produce, train, judge], enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")))
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return list_runs(open_store(str(root / "metadata.sqlite")))[-1]


def _artifacts(root):
    return {a.id: a for a in open_store(str(root / "metadata.sqlite")).get_artifacts()}


def test_gc_keeps_the_latest_run_and_the_latest_blessed_model(tmp_path):
    root = tmp_path / "root"
    _run(root, 1000, bless=1)  # run 1: blessed, the next runs' baseline
    before_second = set(_artifacts(root))
    _run(root, 2000, bless=0)  # run 2: new data, not blessed
    third = _run(root, 2000, bless=0)  # run 3: all served from the cache
    assert sorted(third["cached"]) == ["Bless", "Produce", "Train"]
    artifacts = _artifacts(root)
    first_run = {i: a for i, a in artifacts.items() if i in before_second}
    first_examples = next(a for a in first_run.values() if "/Produce/" in a.uri)
    first_model = next(a for a in first_run.values() if "/Train/" in a.uri)
    first_blessing = next(a for a in first_run.values() if "/Bless/" in a.uri)

    dry = collect_garbage(str(root), dry_run=True)
    assert dry["artifacts"] == 1 and os.path.isdir(first_examples.uri)

    report = collect_garbage(str(root))
    assert report["artifacts"] == 1 and report["bytes"] == 1000
    after = _artifacts(root)
    assert after[first_examples.id].state == metadata_store_pb2.Artifact.DELETED
    assert not os.path.exists(first_examples.uri)
    # The latest blessed model and its blessing stay: the next run's baseline.
    for kept in (first_model, first_blessing):
        assert after[kept.id].state == metadata_store_pb2.Artifact.LIVE and os.path.isdir(kept.uri)
    # Everything the latest run used stays: the same run again is served from the cache.
    live = [a for i, a in after.items() if i not in before_second]
    assert live and all(a.state == metadata_store_pb2.Artifact.LIVE and os.path.isdir(a.uri) for a in live)
    fourth = _run(root, 2000, bless=0)
    assert sorted(fourth["cached"]) == ["Bless", "Produce", "Train"] and not fourth["executed"]
    assert collect_garbage(str(root))["artifacts"] == 0  # nothing more to collect


def test_gc_cli_reports_and_refuses_a_missing_store(tmp_path, capsys):
    import pipeline

    assert pipeline.main(["gc", "--pipeline-root", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: no ML Metadata at ")
    root = tmp_path / "root"
    _run(root, 10, bless=1)
    assert pipeline.main(["gc", "--pipeline-root", str(root)]) == 0
    assert "deleted 0 artifact(s)" in capsys.readouterr().out
