"""Coverage at a target precision: no thresholding vs one global threshold vs per-node back-off.

    .venv/bin/python bench/thresholding.py --pipeline-root pipelines/fashion [--target 0.95]

Reads the latest trained model and the example splits of a pipeline root from its ML
Metadata. The global threshold (predict the full decoded path or nothing) is chosen on
the calibration split, like the per-node thresholds baked into the model, and every
number is reported on the eval split, which neither choice saw.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def _split_records(examples_uri: str, split: str) -> list[bytes]:
    import tensorflow as tf

    files = tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*.gz"))
    return [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _predict(model_dir: str, records: list[bytes], batch: int = 512) -> dict[str, np.ndarray]:
    import tensorflow as tf

    from schema import features

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    parts: dict[str, list] = {}
    for i in range(0, len(records), batch):
        out = serve(examples=tf.constant(records[i:i + batch]))
        for key in (features.OUT_PATH, features.OUT_FULL_PATH, features.OUT_FULL_CONFIDENCE):
            parts.setdefault(key, []).append(out[key].numpy())
    truth = []
    for r in records:
        ex = tf.train.Example.FromString(r)
        truth.append(ex.features.feature[features.CATEGORY_PATH].bytes_list.value[0])
    result = {k: np.concatenate(v) for k, v in parts.items()}
    result["truth"] = np.array(truth, dtype=object)
    return result


def _is_node_of(pred: bytes, truth: bytes) -> bool:
    p, t = pred.decode().split(" > "), truth.decode().split(" > ")
    return bool(pred) and t[: len(p)] == p


def _stats(pred_paths, truth, predicted_mask) -> tuple[float, float]:
    """(coverage, precision): share given a path, and share of those that are right."""
    n = len(truth)
    covered = int(predicted_mask.sum())
    right = sum(_is_node_of(p, t) for p, t, m in zip(pred_paths, truth, predicted_mask) if m)
    return covered / n, (right / covered if covered else float("nan"))


def global_threshold(confidence, correct, target: float) -> float:
    from trainer.thresholds import NEVER, lowest_threshold

    t = lowest_threshold(confidence, correct, target)
    return NEVER if t is None else t


def evaluate(model_dir: str, examples_uri: str, target: float) -> dict[str, tuple[float, float]]:
    from schema import features

    calib = _predict(model_dir, _split_records(examples_uri, "calibration"))
    evals = _predict(model_dir, _split_records(examples_uri, "eval"))
    labelled = np.array([bool(t) for t in evals["truth"]])
    evals = {k: v[labelled] for k, v in evals.items()}
    calib_correct = np.array([p == t for p, t in zip(calib[features.OUT_FULL_PATH], calib["truth"])])
    t = global_threshold(calib[features.OUT_FULL_CONFIDENCE], calib_correct, target)
    full, truth = evals[features.OUT_FULL_PATH], evals["truth"]
    rows = {
        "no thresholding (full decoded path)": _stats(full, truth, np.ones(len(full), bool)),
        f"one global threshold, leaf or nothing (t={t:.3f})": _stats(
            full, truth, evals[features.OUT_FULL_CONFIDENCE] >= t),
        "per-node back-off (the pushed model)": _stats(
            evals[features.OUT_PATH], truth, np.array([bool(p) for p in evals[features.OUT_PATH]])),
    }
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--target", type=float, default=0.95)
    args = parser.parse_args(argv)

    from components.run_summary import _store, newest
    from schema.config import PipelineConfig

    root = str(Path(args.pipeline_root).resolve())
    config = PipelineConfig.local(".", "fashion", pipeline_root=root)
    store = _store(config)
    model = newest(store, "Model", producer="TaxonomyTrainer")
    examples = newest(store, "Examples", having="rows_ingested")
    if model is None or examples is None:
        print(f"no trained model or examples recorded under {root}", file=sys.stderr)
        return 2
    rows = evaluate(os.path.join(model.uri, "Format-Serving"), examples.uri, args.target)
    print(f"model {model.uri}\neval split of {examples.uri}, target precision {args.target}\n")
    print("| strategy | coverage | precision of what is predicted |")
    print("|---|---|---|")
    for name, (coverage, precision) in rows.items():
        print(f"| {name} | {coverage:.3f} | {precision:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
