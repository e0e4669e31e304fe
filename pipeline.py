"""The product categorisation pipeline: wiring and command line, no model or data logic.

    python pipeline.py run --catalog DIR --spec NAME_OR_FILE [--pipeline-root DIR]
                           [--serving-dir DIR] [--max-rows N] [--verbose]
    python pipeline.py categorize --catalog DIR_OR_CSV --spec NAME_OR_FILE --output FILE.csv
                           [--model DIR] [--no-threshold]
    python pipeline.py status [--pipeline-root DIR] [--spec NAME_OR_FILE]
    python pipeline.py gc [--pipeline-root DIR] [--spec NAME_OR_FILE] [--dry-run]
    python pipeline.py compile --output FILE.json [--image IMAGE] [--pipeline-root URI]
                           [--train-workers N] [--project P] [--region R] [--bucket gs://B] ...
    python pipeline.py submit (--host KFP_URL | --vertex) [--package FILE.json] [compile flags]
"""
from __future__ import annotations

import os
import sys

# Keras 2 (tf_keras) for TFMA 0.47 and MultiWorkerMirroredStrategy; before any TF import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

from pipeline_definition import create_pipeline  # noqa: E402,F401  (the one definition; re-exported)
from schema.config import (BEAM_MODES, CATEGORIZE_BATCH_ROWS, DEFAULT_CATALOG, PROJECT_ROOT, Gate,  # noqa: E402
                           PipelineConfig)


def run_local(config: PipelineConfig, verbose: bool = False) -> None:
    """Runs the pipeline with LocalDagRunner: a line per component as it starts and ends,
    third-party noise silenced unless `verbose` (components/run_console.py), then the
    run summary."""
    from components import process_memory
    from schema.catalog_reader import check_catalog

    process_memory.limit_arenas()  # before TensorFlow and Beam start their threads
    # A catalog whose header cannot fit the spec is refused before any component starts.
    check_catalog(os.path.join(config.catalog_dir, config.spec.csv_file), config.spec)
    from components.run_console import console

    with console(verbose, on_component_ran=process_memory.release_freed_memory):
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        from components.run_summary import print_summary

        print(f"Running pipeline {config.pipeline_name} on {config.catalog_dir}", flush=True)
        print(f"  pipeline root: {config.pipeline_root}", flush=True)
        pipeline = create_pipeline(config)
        process_memory.exempt_live_objects_from_collection()
        LocalDagRunner().run(pipeline)
        print_summary(config)


def _positive_count(text: str) -> int:
    """argparse type: a whole number of at least 1, else a usage error naming the value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


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
            from schema.demo_catalog import write_demo_catalog

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
    from schema import compat

    compat.one_package_scan()  # seconds off every command's start-up (TFX imports Google's clients)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the whole pipeline with LocalDagRunner")
    _add_run_args(run)
    run.add_argument("--train-workers", type=int, default=1,
                     help="train data-parallel with N worker processes on this machine (MultiWorkerMirroredStrategy)")
    run.add_argument("--verbose", action="store_true",
                     help="show every library's log and warnings (default: one line per component, the project's "
                          "own messages and errors)")
    cat = sub.add_parser("categorize", help="categorise a catalog with a pushed model")
    cat.add_argument("--catalog", required=True, help="catalog folder or CSV file")
    cat.add_argument("--spec", required=True)
    cat.add_argument("--output", required=True)
    cat.add_argument("--model", default=None, help="model folder (default: newest pushed model of the spec)")
    cat.add_argument("--serving-dir", default=None)
    cat.add_argument("--no-threshold", action="store_true", help="return the full decoded path for every product")
    cat.add_argument("--batch-size", type=_positive_count, default=CATEGORIZE_BATCH_ROWS,
                     help="catalog rows scored together")
    status = sub.add_parser("status", help="list the runs recorded in the pipeline's ML Metadata")
    status.add_argument("--pipeline-root", default=None, help="default: pipelines/<spec>")
    status.add_argument("--spec", default="fashion")
    gc = sub.add_parser("gc", help="delete old pipeline artifacts; the latest run stays cached")
    gc.add_argument("--pipeline-root", default=None, help="default: pipelines/<spec>")
    gc.add_argument("--spec", default="fashion")
    gc.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    # Kubeflow Pipelines / Vertex AI (kubeflow/): the same flags as `run`, plus cluster ones.
    from kubeflow import settings as kubeflow_settings

    comp = sub.add_parser("compile", help="compile the pipeline for Vertex AI or Kubeflow Pipelines 2.x (JSON)")
    _add_run_args(comp)
    kubeflow_settings.add_compile_arguments(comp)
    submit = sub.add_parser("submit", help="start a run on a KFP endpoint (--host) or Vertex AI (--vertex)")
    _add_run_args(submit)
    kubeflow_settings.add_submit_arguments(submit)
    args = parser.parse_args(argv)
    if args.command == "run":  # before the libraries are imported: they log and warn on import
        from components.run_console import prepare_process

        prepare_process(verbose=args.verbose)

    from schema.catalog_reader import CatalogError
    from schema.catalog_spec import SpecError
    from schema.config import GateError
    from trainer.inference_client import CategorizeError

    user_errors: tuple[type[BaseException], ...] = (SpecError, CatalogError, CategorizeError, GateError,
                                                       FileNotFoundError)
    if args.command in ("compile", "submit"):
        from kubeflow.compiler import ImageError
        from kubeflow.submit import SubmitError

        user_errors += (ImageError, SubmitError)

    try:
        if args.command == "run":
            run_local(_config_from_args(args), verbose=args.verbose)
        elif args.command == "categorize":
            from trainer.inference_client import categorize

            categorize(args.catalog, args.spec, args.output, model_dir=args.model,
                       serving_dir=args.serving_dir, use_thresholds=not args.no_threshold,
                       batch_size=args.batch_size)
        elif args.command == "status":
            from components.run_status import print_status
            from schema.catalog_spec import load_spec

            spec_name = load_spec(args.spec).name
            root = args.pipeline_root or str(PROJECT_ROOT / "pipelines" / spec_name)
            print_status(os.path.join(root, "metadata.sqlite"), f"categorize-{spec_name}")
        elif args.command == "gc":
            from components.run_gc import print_gc
            from schema.catalog_spec import load_spec

            root = args.pipeline_root or str(PROJECT_ROOT / "pipelines" / load_spec(args.spec).name)
            print_gc(root, dry_run=args.dry_run)
        elif args.command == "compile":
            from kubeflow.compiler import compile_from_args

            compile_from_args(args, _config_from_args)
        elif args.command == "submit":
            from kubeflow.submit import submit_from_args

            submit_from_args(args, _config_from_args)
    except user_errors as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
