"""The product categorisation pipeline: wiring and command line, no model or data logic.

    python pipeline.py run --catalog DIR --spec NAME_OR_FILE [--pipeline-root DIR]
                           [--serving-dir DIR] [--max-rows N]
    python pipeline.py categorize --catalog DIR_OR_CSV --spec NAME_OR_FILE --output FILE.csv
                           [--model DIR] [--no-threshold]
    python pipeline.py status [--pipeline-root DIR] [--spec NAME_OR_FILE]
    python pipeline.py compile --output FILE.json [--image IMAGE] [--pipeline-root URI]
                           [--train-workers N] [--project P] [--region R] [--bucket gs://B] ...
    python pipeline.py submit (--host KFP_URL | --vertex) [--package FILE.json] [compile flags]
"""
from __future__ import annotations

import os

# Keras 2 (tf_keras) for TFMA 0.47 and MultiWorkerMirroredStrategy; before any TF import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from schema.config import BEAM_MODES, DEFAULT_CATALOG, Gate, PipelineConfig  # noqa: E402


def create_pipeline(config: PipelineConfig):
    """Builds the TFX pipeline; the local and Kubeflow runners both call this."""
    import tensorflow_model_analysis as tfma  # noqa: F401  (registers TFMA protos)
    from tfx import v1 as tfx
    from tfx.components import SchemaGen, StatisticsGen
    from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
    from tfx.components import Evaluator
    from tfx.dsl.components.common import resolver
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
    from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2
    from tfx.types import Channel, standard_artifacts

    from components.baseline_selector.component import BaselineSelector
    from components.catalog_example_gen.component import CatalogExampleGen
    from components.code_version import CODE_VERSION_CONFIG, TRAINER_CODE, TRANSFORM_CODE, code_version
    from components.embedder.component import Embedder
    from components.review_report.component import ReviewReport
    from components.safe_pusher.component import SafePusher
    from components.strict_example_validator.component import StrictExampleValidator
    from components.taxonomy_aware.component import TaxonomyTrainer, TaxonomyTransform
    from components.taxonomy_gen.component import TaxonomyGen
    from evaluator.eval_config import build_eval_config
    from trainer.local_cluster import LOCAL_WORKERS_CONFIG
    from trainer.preprocessing import CHAR_NGRAMS_CONFIG, HASH_BUCKETS_CONFIG, NGRAM_WEIGHTING_CONFIG
    from trainer.presets import get_preset
    from trainer.run import (TRAIN_CONFIG_BASELINE, TRAIN_CONFIG_PRESET, TRAIN_CONFIG_SHUFFLE_LABELS,
                             TRAIN_CONFIG_TARGET_PRECISION)

    spec = config.spec
    preset = get_preset(config.preset)

    example_gen = CatalogExampleGen(config.catalog_dir, spec, max_rows=config.max_rows)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    if spec.schema_path and spec.schema_path.exists():
        schema_gen = ImportSchemaGen(schema_file=str(spec.schema_path))
    else:
        schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    taxonomy_gen = TaxonomyGen(
        examples=example_gen.outputs["examples"],
        max_depth=spec.max_depth,
        min_count=spec.min_products_per_category,
    )
    # Text and image embeddings (components/embedder): what the model, the Evaluator, the
    # review and the push check read. Statistics, validation and the taxonomy stay on the
    # raw examples; the Embedder passes on the schema with the two embedding features added.
    embedder = None
    model_examples, model_schema = example_gen.outputs["examples"], schema_gen.outputs["schema"]
    if config.embeddings:
        embedder = Embedder(
            examples=example_gen.outputs["examples"],
            cache_dir=config.embedding_cache_dir,
            schema=schema_gen.outputs["schema"],
        )
        embedder.add_upstream_node(example_validator)  # no embedding work on a rejected catalog
        model_examples, model_schema = embedder.outputs["examples"], embedder.outputs["schema"]
    transform = TaxonomyTransform(
        taxonomy=taxonomy_gen.outputs["taxonomy"],
        examples=model_examples,
        schema=model_schema,
        preprocessing_fn="trainer.preprocessing.preprocessing_fn",
        splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=["train", "calibration", "eval"]),
        custom_config={HASH_BUCKETS_CONFIG: preset.hash_buckets, CHAR_NGRAMS_CONFIG: list(preset.char_ngram_widths),
                       NGRAM_WEIGHTING_CONFIG: preset.ngram_weighting,
                       CODE_VERSION_CONFIG: code_version(*TRANSFORM_CODE)},
    )
    transform.add_upstream_node(example_validator)  # blocking anomalies stop the run here

    trainer_code = code_version(*TRAINER_CODE)  # one fingerprint for both Trainers

    def trainer(baseline: bool):
        return TaxonomyTrainer(
            taxonomy=taxonomy_gen.outputs["taxonomy"],
            run_fn="trainer.run.run_fn",
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=model_schema,
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["calibration"]),
            custom_config={
                TRAIN_CONFIG_PRESET: preset.to_dict(),
                TRAIN_CONFIG_BASELINE: baseline,
                TRAIN_CONFIG_SHUFFLE_LABELS: config.shuffle_labels and not baseline,
                TRAIN_CONFIG_TARGET_PRECISION: config.target_precision,
                LOCAL_WORKERS_CONFIG: 1 if baseline else config.train_workers,
                CODE_VERSION_CONFIG: trainer_code,
            },
        )

    model_trainer = trainer(baseline=False)
    baseline_trainer = trainer(baseline=True).with_id("BaselineTrainer")
    latest_blessed = resolver.Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    # Baseline: the model in production, or on the first run this run's bag-of-words model.
    baseline = BaselineSelector(
        fallback_model=baseline_trainer.outputs["model"], blessed_model=latest_blessed.outputs["model"]
    )
    evaluator = Evaluator(
        examples=model_examples,
        model=model_trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline"],
        eval_config=build_eval_config(spec, spec.max_depth, config.gate, with_baseline=True),
        example_splits=["eval"],
    )
    # Static HTML review: metrics per slice vs the baseline, verdict, curve, confusions, errors.
    review = ReviewReport(
        examples=model_examples,
        model=model_trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline"],
        evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"],
    )
    # Infra check on eval rows, atomic versioned push, model card beside the model.
    pusher = SafePusher(
        model=model_trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.push_dir)
        ),
        examples=model_examples,
        evaluation=evaluator.outputs["evaluation"],
    )
    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        taxonomy_gen,
        *([embedder] if embedder is not None else []),
        transform,
        model_trainer,
        baseline_trainer,
        latest_blessed,
        baseline,
        evaluator,
        review,
        pusher,
    ]
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        # SQLite ML Metadata for a local root only: Kubeflow / Vertex AI bring their own
        # (and creating the SQLite folder under a gs:// root would need the network).
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
            if "://" not in config.pipeline_root
            else None
        ),
        beam_pipeline_args=list(config.beam_args),
    )


def run_local(config: PipelineConfig) -> None:
    from schema.catalog_reader import check_catalog

    # A catalog whose header cannot fit the spec is refused before any component starts.
    check_catalog(os.path.join(config.catalog_dir, config.spec.csv_file), config.spec)
    from tfx import v1 as tfx

    from components.run_summary import print_summary

    print(f"Running pipeline {config.pipeline_name} on {config.catalog_dir}", flush=True)
    print(f"  pipeline root: {config.pipeline_root}", flush=True)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
    print_summary(config)


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", default=None, help="catalog folder (default: ../shared/datasets/fashion or a demo)")
    parser.add_argument("--spec", default="fashion", help="catalog spec name in schema/catalogs or a spec file")
    parser.add_argument("--pipeline-root", default=None)
    parser.add_argument("--serving-dir", default=None)
    parser.add_argument("--max-rows", type=int, default=None, help="read only the first N rows (development)")
    parser.add_argument("--preset", default=os.environ.get("MODEL_PRESET", "default"),
                        help="model size preset: small, default or large")
    gate = Gate()  # the defaults' one home (schema/config.py)
    parser.add_argument("--min-hf1", type=float, default=gate.min_full_path_hierarchical_f1,
                        help="floor on the candidate's hierarchical F1 of the decoded path")
    parser.add_argument("--min-gain", type=float, default=gate.min_gain,
                        help="the lower confidence bound of the leaf-accuracy gain over the baseline must "
                             "reach this (> 0: a tie is not a win)")
    parser.add_argument("--slice-tolerance", type=float, default=gate.slice_tolerance,
                        help="a top-level slice blocks only on a significant leaf-accuracy loss larger than this")
    parser.add_argument("--coverage-tolerance", type=float, default=gate.coverage_tolerance,
                        help="overall coverage blocks only on a significant loss larger than this")
    parser.add_argument("--gate-confidence", type=float, default=gate.confidence,
                        help="two-sided confidence of the gate's intervals")
    parser.add_argument("--target-precision", type=float, default=0.95,
                        help="precision the per-node thresholds aim for on the calibration split (0 = off)")
    parser.add_argument("--shuffle-labels", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help="re-run every component")
    parser.add_argument("--no-embeddings", action="store_true",
                        help="skip the Embedder: the model reads the hashed n-grams only")
    parser.add_argument("--embedding-cache-dir", default=None,
                        help="content-hash embedding cache (default: .cache/embeddings; '' turns it off)")
    parser.add_argument("--beam-mode", choices=sorted(BEAM_MODES), default=None,
                        help="DirectRunner mode of the Beam components (default: the measured faster one, "
                             "see BENCHMARKS.md)")


def _config_from_args(args: argparse.Namespace) -> PipelineConfig:
    catalog = args.catalog
    if catalog is None:
        if DEFAULT_CATALOG.exists():
            catalog = str(DEFAULT_CATALOG)
        else:
            from tests.fixtures.demo_catalog import write_demo_catalog

            catalog = str(write_demo_catalog(PROJECT_ROOT / "outputs" / "demo_catalog"))
            print(f"../shared/datasets is missing: using the generated demo catalog {catalog}")
    return PipelineConfig.local(
        catalog,
        args.spec,
        pipeline_root=args.pipeline_root,
        serving_dir=args.serving_dir,
        max_rows=args.max_rows,
        preset=args.preset,
        gate=Gate(min_full_path_hierarchical_f1=args.min_hf1, min_gain=args.min_gain,
                  slice_tolerance=args.slice_tolerance, coverage_tolerance=args.coverage_tolerance,
                  confidence=args.gate_confidence),
        target_precision=args.target_precision,
        shuffle_labels=args.shuffle_labels,
        enable_cache=not args.no_cache,
        train_workers=getattr(args, "train_workers", None) or 1,
        embeddings=not args.no_embeddings,
        embedding_cache_dir=args.embedding_cache_dir,
        **({"beam_args": BEAM_MODES[args.beam_mode]} if args.beam_mode else {}),
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline with LocalDagRunner")
    _add_run_args(run)
    run.add_argument("--train-workers", type=int, default=1,
                     help="train data-parallel with N worker processes on this machine (MultiWorkerMirroredStrategy)")
    cat = sub.add_parser("categorize", help="categorise a catalog with a pushed model")
    cat.add_argument("--catalog", required=True, help="catalog folder or CSV file")
    cat.add_argument("--spec", required=True)
    cat.add_argument("--output", required=True)
    cat.add_argument("--model", default=None, help="model folder (default: newest pushed model of the spec)")
    cat.add_argument("--serving-dir", default=None)
    cat.add_argument("--no-threshold", action="store_true", help="return the full decoded path for every product")
    cat.add_argument("--batch-size", type=int, default=512)
    status = sub.add_parser("status", help="list the runs recorded in the pipeline's ML Metadata")
    status.add_argument("--pipeline-root", default=None, help="default: pipelines/<spec>")
    status.add_argument("--spec", default="fashion")
    # Kubeflow Pipelines / Vertex AI (kubeflow/runner.py): the same flags as `run`, plus cluster ones.
    from kubeflow import runner as kubeflow_runner

    comp = sub.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines v2 / Vertex AI (JSON)")
    _add_run_args(comp)
    kubeflow_runner.add_compile_arguments(comp)
    submit = sub.add_parser("submit", help="start a run on a KFP endpoint (--host) or Vertex AI (--vertex)")
    _add_run_args(submit)
    kubeflow_runner.add_submit_arguments(submit)
    args = parser.parse_args(argv)

    from schema.catalog_reader import CatalogError
    from schema.catalog_spec import SpecError
    from schema.config import GateError

    try:
        if args.command == "run":
            run_local(_config_from_args(args))
        elif args.command == "categorize":
            from trainer.categorize import categorize

            categorize(args.catalog, args.spec, args.output, model_dir=args.model,
                       serving_dir=args.serving_dir, use_thresholds=not args.no_threshold,
                       batch_size=args.batch_size)
        elif args.command == "status":
            from components.run_status import print_status
            from schema.catalog_spec import load_spec

            spec_name = load_spec(args.spec).name
            root = args.pipeline_root or str(PROJECT_ROOT / "pipelines" / spec_name)
            print_status(os.path.join(root, "metadata.sqlite"), f"categorize-{spec_name}")
        elif args.command == "compile":
            kubeflow_runner.compile_from_args(args, _config_from_args)
        elif args.command == "submit":
            kubeflow_runner.submit_from_args(args, _config_from_args)
    except (SpecError, CatalogError, GateError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
