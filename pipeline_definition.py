"""The pipeline definition: `create_pipeline(config)` wires the components, nothing else.

The command line (pipeline.py, LocalDagRunner) and the Kubeflow / Vertex AI compiler
(kubeflow/compiler.py) both import this module; it imports neither of them, so a runner
never loads the command line and the definition has one home.
"""
from __future__ import annotations

import os

# Keras 2 (tf_keras) for TFMA 0.47 and MultiWorkerMirroredStrategy; before any TF import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from schema.config import (  # noqa: E402
    INCUMBENT_EARLIER_BLESSED, INCUMBENT_LATEST_BLESSED, INCUMBENT_LATEST_PUSHED, PipelineConfig,
)


def create_pipeline(config: PipelineConfig):
    """Builds the TFX pipeline; the local and Kubeflow runners both call this."""
    import tensorflow_model_analysis as tfma  # noqa: F401  (registers TFMA protos)
    # Modules, not `tfx.v1`: that public facade also imports Vertex AI's client library for
    # its extensions, seconds of start-up that a local run never uses.
    from tfx.components import SchemaGen, StatisticsGen
    from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
    from tfx.components import Evaluator
    from tfx.dsl.components.common import resolver
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
    from tfx.orchestration import metadata, pipeline
    from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2
    from tfx.types import Channel, standard_artifacts

    from components.baseline_selector.component import BaselineSelector
    from components.baseline_selector.incumbent_strategy import LatestBlessedOtherThanCandidateStrategy
    from components.catalog_example_gen.component import CatalogExampleGen
    from components.code_version import stamp_code_versions
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
    from trainer.run import (TRAIN_CONFIG_BAG_OF_WORDS, TRAIN_CONFIG_PRESET, TRAIN_CONFIG_SHUFFLE_LABELS,
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
        # No TFDV statistics of Transform's input and output: StatisticsGen and the
        # validator have the catalog's; these would go over the embeddings again, most of
        # Transform's memory and much of its time, for nobody to read (BENCHMARKS.md).
        disable_statistics=True,
        custom_config={HASH_BUCKETS_CONFIG: preset.hash_buckets, CHAR_NGRAMS_CONFIG: list(preset.char_ngram_widths),
                       NGRAM_WEIGHTING_CONFIG: preset.ngram_weighting},
    )
    transform.add_upstream_node(example_validator)  # blocking anomalies stop the run here

    def trainer(bag_of_words: bool):
        return TaxonomyTrainer(
            taxonomy=taxonomy_gen.outputs["taxonomy"],
            run_fn="trainer.run.run_fn",
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=model_schema,
            # The Embedder's word mapper travels inside the serving model (categorize maps
            # request titles with it); both models' n-grams read the mapped titles.
            word_mapper=embedder.outputs["word_mapper"] if embedder is not None else None,
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["calibration"]),
            custom_config={
                TRAIN_CONFIG_PRESET: preset.to_dict(),
                TRAIN_CONFIG_BAG_OF_WORDS: bag_of_words,
                TRAIN_CONFIG_SHUFFLE_LABELS: config.shuffle_labels and not bag_of_words,
                TRAIN_CONFIG_TARGET_PRECISION: config.target_precision,
                LOCAL_WORKERS_CONFIG: 1 if bag_of_words else config.train_workers,
            },
        )

    model_trainer = trainer(bag_of_words=False)
    bag_of_words_trainer = trainer(bag_of_words=True).with_id("BagOfWordsTrainer")
    # The incumbent: the model the candidate must beat (schema/config.py, INCUMBENT_*).
    # LocalDagRunner: the latest blessed model in ML Metadata other than the candidate, so
    # an unchanged re-run is served from the cache; Vertex AI: the latest blessed model
    # (TFX's built-in strategy); open-source KFP, which runs no resolver: the newest
    # complete pushed version, found the way `categorize` finds it.
    latest_blessed = None
    if config.incumbent_source == INCUMBENT_EARLIER_BLESSED:
        latest_blessed = resolver.Resolver(
            strategy_class=LatestBlessedOtherThanCandidateStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
            candidate=model_trainer.outputs["model"],
        ).with_id("latest_blessed_model_resolver")
    elif config.incumbent_source == INCUMBENT_LATEST_BLESSED:
        latest_blessed = resolver.Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
    # Baseline: the model in production, or on the first run this run's bag-of-words model.
    baseline = BaselineSelector(
        fallback_model=bag_of_words_trainer.outputs["model"],
        blessed_model=latest_blessed.outputs["model"] if latest_blessed is not None else None,
        pushed_models_dir=config.push_dir if config.incumbent_source == INCUMBENT_LATEST_PUSHED else None,
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
        bag_of_words_trainer,
        *([latest_blessed] if latest_blessed is not None else []),
        baseline,
        evaluator,
        review,
        pusher,
    ]
    # Every cache key holds the code its component runs (components/code_version.py).
    stamp_code_versions(components)
    return pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        # SQLite ML Metadata for a local root only: Kubeflow / Vertex AI bring their own
        # (and creating the SQLite folder under a gs:// root would need the network).
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(config.metadata_path)
            if "://" not in config.pipeline_root
            else None
        ),
        beam_pipeline_args=list(config.beam_args),
    )
