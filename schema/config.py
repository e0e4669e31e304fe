"""PipelineConfig: the one typed object that configures a run, local or on a cluster.

Filled from CLI flags and environment variables by `pipeline.py`, passed whole to
`create_pipeline`, so the local runner and the Kubeflow runner build the same pipeline.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from schema.catalog_spec import CatalogSpec, load_spec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASETS = PROJECT_ROOT.parent / "shared" / "datasets"
DEFAULT_CATALOG = DEFAULT_DATASETS / "fashion"

# Beam on the DirectRunner: see BENCHMARKS.md for the measurement behind the default.
BEAM_MODES = {
    "in_memory": ("--direct_running_mode=in_memory", "--direct_num_workers=1"),
    # one worker process per core (direct_num_workers=0 means "as many as CPUs")
    "multi_processing": ("--direct_running_mode=multi_processing", "--direct_num_workers=0"),
}
DEFAULT_BEAM_ARGS = BEAM_MODES["in_memory"]

# Where the incumbent (the model a candidate must beat) comes from: the latest blessed
# model in ML Metadata (a TFX resolver: LocalDagRunner, Vertex AI Pipelines), or the newest
# complete version pushed to the serving dir (open-source KFP, which runs no resolver).
INCUMBENT_LATEST_BLESSED = "latest_blessed"
INCUMBENT_LATEST_PUSHED = "latest_pushed"
INCUMBENT_SOURCES = (INCUMBENT_LATEST_BLESSED, INCUMBENT_LATEST_PUSHED)


@dataclasses.dataclass
class PipelineConfig:
    catalog_dir: str
    spec: CatalogSpec
    pipeline_root: str
    serving_dir: str
    max_rows: Optional[int] = None
    preset: str = "default"
    train_workers: int = 1
    beam_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    # Gating (see evaluator/eval_config.py Gate).
    min_hierarchical_f1: float = 0.5
    min_leaf_accuracy: float = 0.3
    f1_margin_over_baseline: float = 1e-6  # a tie with the baseline is not a win
    coverage_tolerance: float = 0.0
    slice_tolerance: float = 0.05
    target_precision: float = 0.95  # smart thresholding on the calibration split; 0 = off
    shuffle_labels: bool = False  # trains a deliberately broken candidate (gating tests)
    enable_cache: bool = True
    incumbent_source: str = INCUMBENT_LATEST_BLESSED
    # Embedder: multilingual text and image embeddings as extra model inputs.
    embeddings: bool = True
    embedding_cache_dir: Optional[str] = None  # None: <project>/.cache/embeddings; "": no cache

    def __post_init__(self) -> None:
        if self.incumbent_source not in INCUMBENT_SOURCES:
            raise ValueError(f"incumbent_source must be one of {INCUMBENT_SOURCES}, got {self.incumbent_source!r}")

    @property
    def pipeline_name(self) -> str:
        return f"categorize-{self.spec.name}"

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.pipeline_root, "metadata.sqlite")

    @property
    def push_dir(self) -> str:
        return os.path.join(self.serving_dir, self.spec.name)

    @classmethod
    def local(
        cls,
        catalog_dir: str | os.PathLike,
        spec_name: str,
        pipeline_root: Optional[str] = None,
        serving_dir: Optional[str] = None,
        **kwargs,
    ) -> "PipelineConfig":
        spec = load_spec(spec_name)
        root = pipeline_root or str(PROJECT_ROOT / "pipelines" / spec.name)
        serving = serving_dir or str(PROJECT_ROOT / "serving")
        return cls(
            catalog_dir=str(Path(catalog_dir).resolve()),
            spec=spec,
            pipeline_root=str(Path(root).resolve()),
            serving_dir=str(Path(serving).resolve()),
            **kwargs,
        )
