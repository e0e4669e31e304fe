"""The first epoch of training: how much of it is AutoGraph rewriting Keras.

    .venv/bin/python bench/first_epoch.py                       # pipelines/fashion's Transform output
    .venv/bin/python bench/first_epoch.py --pipeline-root DIR --models bag_of_words hierarchical

A Keras model's first batch traces its train function; TensorFlow 2.16's AutoGraph then
rewrites the Python source of every function it calls that no rule exempts, and tf_keras
(Keras 2 under its new name) is not exempt, where `keras` is. `compat.keras_code_unconverted`
adds the rule (trainer/run.py calls it). This runs two epochs of each model the way run_fn
builds it, on the newest Transform output of a pipeline root, once without and once with
the rule, each in a fresh process (the rule is process-wide), and prints the first batch's
seconds, each epoch's seconds and the losses: with the same seed the losses must match.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from schema.config import PROJECT_ROOT

MODELS = ("bag_of_words", "hierarchical")


def _one(root: str, model_kind: str, rule: bool) -> dict:
    """Two epochs of one model in this process; the numbers as a dict."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import math

    import tensorflow_transform as tft
    import tf_keras as keras
    from tfx.components.util import tfxio_utils
    from tfx.types import standard_artifacts

    from schema import compat
    from schema.mlmd import newest, open_store
    from schema.taxonomy import Taxonomy
    from trainer.model import build_model
    from trainer.optimizers import compile_model
    from trainer.presets import get_preset
    from trainer.run import count_and_seen_ngram_ids, labelled_dataset

    if rule:
        compat.keras_code_unconverted()
    store = open_store(os.path.join(root, "metadata.sqlite"))
    examples = newest(store, "Examples", producer="TaxonomyTransform")
    graph = newest(store, "TransformGraph")
    taxonomy_artifact = newest(store, "CategoryTaxonomy")
    if examples is None or graph is None or taxonomy_artifact is None:
        raise SystemExit(f"error: {root} has no Transform output: run the pipeline on it first")
    artifact = standard_artifacts.Examples()
    artifact.uri, artifact.split_names = examples.uri, '["train"]'

    class Accessor:  # run_fn's fn_args.data_accessor, the part labelled_dataset uses
        tf_dataset_factory = staticmethod(tfxio_utils.get_tf_dataset_factory_from_artifact([artifact], []))

    tft_output = tft.TFTransformOutput(graph.uri)
    taxonomy = Taxonomy.load(taxonomy_artifact.uri)
    preset = get_preset("default")
    linear = model_kind == "bag_of_words"
    files = [os.path.join(examples.uri, "Split-train", "*")]
    count, seen = count_and_seen_ngram_ids(files, tft_output)
    embeddings = () if linear else tuple(n for n in tft_output.transformed_feature_spec() if n.endswith("_embedding"))
    steps = math.ceil(count / preset.batch_size)
    keras.utils.set_random_seed(7)
    model = build_model(taxonomy, preset, linear=linear, embedding_features=embeddings, seen_ids=seen)
    compile_model(model, preset, taxonomy.depth, total_steps=2 * steps)
    train = labelled_dataset(files, Accessor, tft_output, preset.batch_size, taxonomy.depth)
    marks: dict = {}

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks[f"start{epoch}"] = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0 and "first" not in marks:
                marks["first"] = time.perf_counter() - marks["start0"]

        def on_epoch_end(self, epoch, logs=None):
            marks[f"epoch{epoch}"] = time.perf_counter() - marks[f"start{epoch}"]

    history = model.fit(train, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[Clock()])
    return {"model": model_kind, "rule": rule, "examples": count, "first_batch_s": round(marks["first"], 1),
            "epoch1_s": round(marks["epoch0"], 1), "epoch2_s": round(marks["epoch1"], 1),
            "losses": [round(float(x), 6) for x in history.history["loss"]]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline-root", default=str(PROJECT_ROOT / "pipelines" / "fashion"))
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "RULE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not os.path.exists(os.path.join(args.pipeline_root, "metadata.sqlite")):
        parser.error(f"{args.pipeline_root} has no ML Metadata: run the pipeline on it first")
    if args.child:
        print(json.dumps(_one(args.pipeline_root, args.child[0], args.child[1] == "1")))
        return 0
    print("| model | AutoGraph converts tf_keras | train examples | first batch (s) | epoch 1 (s) | epoch 2 (s) | losses |")
    print("|---|---|---|---|---|---|---|")
    for model_kind in args.models:
        for rule in (False, True):
            env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
            proc = subprocess.run([sys.executable, "-m", "bench.first_epoch", "--pipeline-root", args.pipeline_root,
                                   "--child", model_kind, "1" if rule else "0"],
                                  capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
            if proc.returncode:
                sys.stderr.write(proc.stderr[-3000:])
                return proc.returncode
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {r['model']} | {'no (the rule)' if r['rule'] else 'yes (TF 2.16 as shipped)'} | {r['examples']:,} | "
                  f"{r['first_batch_s']} | {r['epoch1_s']} | {r['epoch2_s']} | {r['losses']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
