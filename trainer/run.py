"""run_fn for the TFX Trainer: the hierarchical model, or with `bag_of_words` the linear one.

The strategy is created first (collective ops must be configured before any other TF
op), every worker runs the same number of steps over DATA-sharded input, and only the
chief writes the serving model; other workers save to a scratch directory.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from trainer import distribution  # noqa: E402  (no TF op before the strategy)

import contextlib  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from absl import logging  # noqa: E402

TRAIN_CONFIG_PRESET = "preset"
TRAIN_CONFIG_BAG_OF_WORDS = "bag_of_words"  # the linear fallback model, not the gate's baseline
TRAIN_CONFIG_SHUFFLE_LABELS = "shuffle_labels"  # deliberately broken model, for gating tests
TRAIN_CONFIG_TARGET_PRECISION = "target_precision"  # smart thresholding; 0 turns it off


def _records(files: list[str]):
    import tensorflow as tf

    paths = [p for pattern in files for p in tf.io.gfile.glob(pattern)]
    return tf.data.TFRecordDataset(paths, compression_type="GZIP")


def _count_records(files: list[str]) -> int:
    import tensorflow as tf

    return int(_records(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def count_and_seen_ngram_ids(files: list[str], tft_output):
    """(number of examples, their distinct hashed n-gram ids) in one pass over the split,
    parsing the n-gram ids alone: the rows the n-gram tables hold (`build_model`)."""
    import numpy as np
    import tensorflow as tf

    from schema import features

    spec = {features.TEXT_TOKENS: tft_output.transformed_feature_spec()[features.TEXT_TOKENS]}
    count, ids = 0, []
    for tokens in _records(files).batch(4096).map(lambda r: tf.io.parse_example(r, spec)[features.TEXT_TOKENS]):
        count += int(tokens.dense_shape[0])
        ids.append(np.unique(tokens.values.numpy()))
    return count, np.unique(np.concatenate(ids)) if ids else np.zeros([0], np.int64)


SHUFFLE_BUFFER = 10_000  # examples; what tfxio's factory shuffles records with by default


def labelled_dataset(files, data_accessor, tft_output, batch_size: int, depth: int, shuffle_labels: bool = False,
                     once: bool = False):
    """Transformed examples of `files` as Keras batches (features, labels per level, label
    weights per level): repeated and shuffled for fit, or one ordered pass with `once`.
    run_fn's input, and bench/first_epoch.py's, so both train on the same batches.

    For fit, the split is read and parsed once and its parsed examples kept in memory
    (`cache`), then shuffled anew every epoch and batched: parsing each epoch's records
    again (each holds 1,792 embedding floats) took CPU that the training step shares on
    two cores (BENCHMARKS.md, "Pipeline scale")."""
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    from schema import features

    ds = data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, shuffle=False, num_epochs=1),
        tft_output.transformed_metadata.schema)
    if not once:
        ds = (ds.unbatch().cache().shuffle(SHUFFLE_BUFFER, seed=7, reshuffle_each_iteration=True)
              .repeat().batch(batch_size))

    def split(batch):
        labels, weights = {}, {}
        for k in range(1, depth + 1):
            ids = batch[features.label_id_feature(k)]
            if shuffle_labels:
                ids = tf.random.shuffle(ids, seed=k)
            labels[f"level_{k}"] = tf.maximum(ids, 0)
            weights[f"level_{k}"] = batch[features.label_mask_feature(k)]
        return batch, labels, weights

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # No tf.data autotuning: after the first epoch the input is in memory and nothing is left
    # to tune, and deleting an autotuned iterator waits for the tuning thread's next wake-up,
    # which it puts off longer the longer it runs: `fit` returned that much later after its
    # last epoch (BENCHMARKS.md, "Pipeline scale"). Parallel reads then use one thread a core.
    options.autotune.enabled = False
    return ds.map(split).with_options(options)


def _word_mapper_file(config: dict) -> str:
    """The Embedder's fitted word mapper file, "" when the Trainer has none (no Embedder, or
    no train split to fit it on): the model then serves unmapped titles."""
    import tensorflow as tf

    from schema.encoders import word_mapper

    folder = config.get(word_mapper.URI_CONFIG)
    path = os.path.join(folder, word_mapper.FILE_NAME) if folder else ""
    return path if path and tf.io.gfile.exists(path) else ""


def _train_timer():
    """A Keras callback summing the seconds spent in training batches: each epoch from its
    start to its validation. (Built here because TF may only load after the strategy.)"""
    import tf_keras as keras

    class TrainTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self._start = 0.0, None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def _stop(self):
            if self._start is not None:
                self.seconds += time.perf_counter() - self._start
                self._start = None

        def on_test_begin(self, logs=None):
            self._stop()

        def on_epoch_end(self, epoch, logs=None):
            self._stop()

    return TrainTimer()


def run_fn(fn_args: Any) -> None:
    strategy = distribution.make_strategy()

    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    from schema import compat
    from schema.taxonomy import Taxonomy, taxonomy_uri
    from trainer.export import export_serving_model
    from trainer.model import build_model
    from trainer.optimizers import compile_model
    from trainer.presets import get_preset

    compat.keras_code_unconverted()  # the first batch, validation and export trace Keras unconverted

    config = fn_args.custom_config or {}
    keras.utils.set_random_seed(int(config.get("seed", 7)))  # repeatable runs
    preset = get_preset(config.get(TRAIN_CONFIG_PRESET, "default"))
    linear = bool(config.get(TRAIN_CONFIG_BAG_OF_WORDS, False))
    taxonomy = Taxonomy.load(taxonomy_uri(config))
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    depth = taxonomy.depth
    workers = max(1, distribution.num_workers())
    global_batch = preset.batch_size * max(1, strategy.num_replicas_in_sync)

    # The bag-of-words model reads the n-grams alone, as it is documented to.
    embedding_features = () if linear else tuple(
        name for name in tft_output.transformed_feature_spec() if name.endswith("_embedding")
    )
    compact = not linear and preset.compact_tables
    if compact:
        train_count, seen = count_and_seen_ngram_ids(fn_args.train_files, tft_output)
    else:
        train_count, seen = _count_records(fn_args.train_files), None
    steps = max(1, math.ceil(train_count / global_batch))
    epochs = preset.bag_of_words_epochs if linear else preset.epochs
    logging.info("training %s on %d examples: %d epochs x %d steps, %d worker(s)",
                 "bag-of-words model" if linear else "model", train_count, epochs, steps, workers)

    train_ds = labelled_dataset(fn_args.train_files, fn_args.data_accessor, tft_output, global_batch, depth,
                                bool(config.get(TRAIN_CONFIG_SHUFFLE_LABELS)))
    eval_ds = labelled_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, global_batch, depth)
    eval_steps = max(1, math.ceil(_count_records(fn_args.eval_files) / global_batch))

    with strategy.scope():
        model = build_model(taxonomy, preset, linear=linear, embedding_features=embedding_features, seen_ids=seen)
        compile_model(model, preset, depth, total_steps=epochs * steps)
    timer = _train_timer()
    # TensorBoard logs (loss and metrics per epoch, train and calibration) in the Trainer's
    # `model_run` artifact, where TFX users look for them; other workers log to scratch.
    with contextlib.ExitStack() as stack:
        log_dir = (fn_args.model_run_dir if distribution.is_chief()
                   else stack.enter_context(tempfile.TemporaryDirectory(prefix="worker_logs_")))
        tensorboard = keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch", profile_batch=0,
                                                  write_graph=False)
        history = model.fit(
            train_ds, epochs=epochs, steps_per_epoch=steps, validation_data=eval_ds, validation_steps=eval_steps,
            verbose=2, callbacks=[timer, tensorboard],
        )
    losses = [float(x) for x in history.history["loss"]]
    info = {
        "kind": "bag_of_words" if linear else "hierarchical",
        "preset": preset.to_dict(),
        "train_examples": train_count,
        "workers": workers,
        "loss_history": losses,
        # Training speed without the per-epoch validation (bench/training.py reads it).
        "train_seconds": round(timer.seconds, 3),
        "train_examples_per_second": round(epochs * steps * global_batch / max(timer.seconds, 1e-9), 1),
        "tensorboard_logs": fn_args.model_run_dir,
        "embedding_features": list(embedding_features),
        "taxonomy": taxonomy.summary(),
    }
    if compact:
        from trainer.model import keep_seen_ngram_rows

        # Before the thresholds are chosen, so that they are chosen on the model as served.
        keep_seen_ngram_rows(model, seen)
        info["serving_ngram_rows"] = int(seen.size)
    thresholds = None
    target = float(config.get(TRAIN_CONFIG_TARGET_PRECISION, 0.0) or 0.0)
    if target > 0:
        from trainer.thresholds import choose_thresholds, collect_predictions

        calibration = labelled_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, global_batch, depth,
                                       once=True)
        calibration = calibration.map(lambda x, _labels, _weights: x)
        preds, confs, trues = collect_predictions(model, calibration, depth, preset.beam_width)
        thresholds = choose_thresholds(taxonomy, preds, confs, trues, target)
        logging.info("thresholds for precision %.2f (%.0f%% confidence) on %d calibration products: levels %s, "
                     "%d node thresholds, %d of them on their level's rule", target, 100 * thresholds["confidence"],
                     len(preds), thresholds["levels"], len(thresholds["nodes"]), len(thresholds["fallback"]))
    mapper_file = _word_mapper_file(config)
    info["word_mapper"] = bool(mapper_file)
    if distribution.is_chief():
        export_serving_model(model, tft_output, taxonomy, thresholds, preset.beam_width,
                             fn_args.serving_model_dir, info, mapper_file)
        logging.info("exported %s model to %s", info["kind"], fn_args.serving_model_dir)
        return
    # Saving under MultiWorkerMirroredStrategy is collective: every worker saves, in step
    # with the chief, but only the chief into the model output.
    with tempfile.TemporaryDirectory(prefix="worker_export_") as scratch:
        export_serving_model(model, tft_output, taxonomy, thresholds, preset.beam_width, scratch, info, mapper_file)
        logging.info("%s %d saved its copy of the %s model to scratch %s (removed); the chief exports",
                     *distribution.task_role(), info["kind"], scratch)
