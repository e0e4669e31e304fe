"""Only the candidate Trainer trains on Vertex AI Training; the baseline trains in its step."""
from __future__ import annotations

import pytest

from kubeflow.settings import KubeflowSettings


def training_config(workers: int) -> dict:
    return KubeflowSettings(project="test-project", region="europe-west4", train_workers=workers,
                            image="registry.example/pipeline:0123456789ab").vertex_training_config()


@pytest.fixture()
def built(tmp_path):
    import pipeline
    from schema.config import PipelineConfig

    config = PipelineConfig.local(tmp_path / "catalog", "fashion", pipeline_root=str(tmp_path / "root"),
                                  serving_dir=str(tmp_path / "serving"), preset="small", train_workers=3)
    tfx_pipeline = pipeline.create_pipeline(config)
    return {node.id: node for node in tfx_pipeline.components}, tfx_pipeline


def _custom_config(node) -> dict:
    from tfx.utils import json_utils

    return json_utils.loads(node.exec_properties["custom_config"])


def test_only_the_candidate_trainer_gets_the_n_replica_job(built):
    from components.taxonomy_aware.executor import TrainerExecutor
    from kubeflow.trainer_executor import VertexTaxonomyTrainerExecutor
    from kubeflow.vertex_training import use_vertex_training

    nodes, tfx_pipeline = built
    baseline_before = _custom_config(nodes["BagOfWordsTrainer"])
    assert use_vertex_training(tfx_pipeline, training_config(3)) == "TaxonomyTrainer"

    candidate, baseline = nodes["TaxonomyTrainer"], nodes["BagOfWordsTrainer"]
    assert candidate.executor_spec.executor_class is VertexTaxonomyTrainerExecutor
    config = _custom_config(candidate)
    pools = config["ai_platform_training_args"]["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 2]
    assert config["bag_of_words"] is False and config["preset"]["name"] == "small"  # run_fn's own settings kept

    assert baseline.executor_spec.executor_class is TrainerExecutor  # trains in its own step
    assert _custom_config(baseline) == baseline_before
    assert baseline_before["bag_of_words"] is True and baseline_before["local_train_workers"] == 1
    others = [n.id for n in tfx_pipeline.components
              if getattr(getattr(n, "executor_spec", None), "executor_class", None) is VertexTaxonomyTrainerExecutor]
    assert others == ["TaxonomyTrainer"]


def test_a_pipeline_without_the_candidate_trainer_is_refused():
    from types import SimpleNamespace

    from kubeflow.vertex_training import use_vertex_training

    with pytest.raises(ValueError, match="'TaxonomyTrainer' is no such node"):
        use_vertex_training(SimpleNamespace(components=[SimpleNamespace(id="BagOfWordsTrainer")]), training_config(2))
    with pytest.raises(ValueError, match="'TaxonomyTrainer' is a SimpleNamespace, expected a TaxonomyTrainer"):
        use_vertex_training(SimpleNamespace(components=[SimpleNamespace(id="TaxonomyTrainer")]), training_config(2))
