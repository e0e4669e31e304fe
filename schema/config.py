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

# Where the DirectRunner's workers get their Python packages: they are this interpreter
# (in_memory) or its child processes (multi_processing), so they have what requirements.txt
# lists. Unless a Beam arg names the workers' dependencies, TFX copies its own install into an
# sdist for every Beam component it runs (`make_beam_dependency_flags`, and leaves a copy of
# TFX in the temp folder each time), for remote workers a DirectRunner never has.
LOCAL_BEAM_DEPENDENCIES = f"--requirements_file={PROJECT_ROOT / 'requirements.txt'}"

# Beam on the DirectRunner: see BENCHMARKS.md for the measurement behind the default.
BEAM_MODES = {
    "in_memory": ("--direct_running_mode=in_memory", "--direct_num_workers=1", LOCAL_BEAM_DEPENDENCIES),
    # one worker process per core (direct_num_workers=0 means "as many as CPUs")
    "multi_processing": ("--direct_running_mode=multi_processing", "--direct_num_workers=0",
                         LOCAL_BEAM_DEPENDENCIES),
}
DEFAULT_BEAM_ARGS = BEAM_MODES["in_memory"]

# Catalog rows `categorize` reads, embeds and scores together: each call to the sentence
# network and the serving model has a fixed cost that larger batches spread (BENCHMARKS.md,
# "`categorize` throughput"); a batch's photos are decoded a network batch at a time, so
# the memory per row in flight is the row and its photo's file bytes.
CATEGORIZE_BATCH_ROWS = 2048

# Where the incumbent (the model a candidate must beat) comes from:
# - the latest blessed model in ML Metadata other than this run's candidate (LocalDagRunner:
#   a re-run on unchanged data then repeats the first run's comparison, from the cache);
# - the latest blessed model (Vertex AI Pipelines, which runs only TFX's built-in resolver
#   strategies: after a push, an unchanged re-run compares the candidate with itself);
# - the newest complete version pushed to the serving dir (open-source KFP, no resolver).
INCUMBENT_EARLIER_BLESSED = "earlier_blessed"
INCUMBENT_LATEST_BLESSED = "latest_blessed"
INCUMBENT_LATEST_PUSHED = "latest_pushed"
INCUMBENT_SOURCES = (INCUMBENT_EARLIER_BLESSED, INCUMBENT_LATEST_BLESSED, INCUMBENT_LATEST_PUSHED)


class GateError(ValueError):
    """A gate setting out of its range (the CLI prints it as an `error:` line)."""


@dataclasses.dataclass(frozen=True)
class Gate:
    """What a candidate must show on the eval split to be blessed (and so pushed): the one
    home of the gate's defaults (`pipeline.py run` flags and the Evaluator read them here).

    Like is compared with like: leaf accuracy of the decoded path before any threshold
    (ranking quality) and coverage at the precision target both models' thresholds share;
    never the thresholded hF1 of two differently thresholded models. Every comparison is
    paired over the same products with an exact interval (evaluator/stats.py)."""

    # Two-sided confidence of every interval; a bound is a one-sided test at (1 - c) / 2.
    confidence: float = 0.95
    # Absolute floors on the candidate (overall slice), with or without a baseline.
    min_full_path_hierarchical_f1: float = 0.5
    min_leaf_accuracy: float = 0.3
    # A win: the lower confidence bound of the leaf-accuracy gain over the baseline must
    # reach this: above 0, i.e. a significant gain (a tie, such as the same model evaluated
    # again, has the interval [0, 0] and is not a win).
    min_gain: float = 1e-6
    # A top-level category slice blocks only when its leaf accuracy drops significantly
    # (the interval's upper bound below 0) AND by more than this.
    slice_tolerance: float = 0.05
    # The same rule for overall coverage at the shared precision target.
    coverage_tolerance: float = 0.01

    def __post_init__(self):
        if not 0.5 < self.confidence < 1:
            raise GateError(f"gate confidence must be in (0.5, 1), got {self.confidence}")
        if self.min_gain <= 0:
            raise GateError(f"--min-gain must be > 0 (a tie is not a win), got {self.min_gain}")
        if self.slice_tolerance < 0 or self.coverage_tolerance < 0:
            raise GateError("gate tolerances must be >= 0")


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
    gate: Gate = dataclasses.field(default_factory=Gate)  # what blesses a candidate
    target_precision: float = 0.95  # smart thresholding on the calibration split; 0 = off
    shuffle_labels: bool = False  # trains a deliberately broken candidate (gating tests)
    enable_cache: bool = True
    incumbent_source: str = INCUMBENT_EARLIER_BLESSED
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
