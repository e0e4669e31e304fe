"""Coverage at a target precision: one global threshold vs per-node back-off (the previous
rule, fitted to the calibration sample, and the shipped one, which needs 90% confidence).

    .venv/bin/python bench/thresholding.py --pipeline-root pipelines/fashion [--targets 0.95 0.98 0.99]

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

import numpy as np  # noqa: E402


def split_records(examples_uri: str, split: str) -> list[bytes]:
    """Every serialized tf.Example of one split of an Examples artifact."""
    from schema.examples import iter_serialized

    return [record for batch in iter_serialized(os.path.join(examples_uri, f"Split-{split}")) for record in batch]


def _predict(model_dir: str, records: list[bytes], depth: int, batch: int = 512) -> dict[str, np.ndarray]:
    import tensorflow as tf

    from schema import features
    from schema.examples import first_bytes

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    keys = [features.OUT_PATH, features.OUT_FULL_PATH, features.OUT_FULL_CONFIDENCE]
    keys += [features.out_level_class(k) for k in range(1, depth + 1)]
    keys += [features.out_level_confidence(k) for k in range(1, depth + 1)]
    parts: dict[str, list] = {}
    for i in range(0, len(records), batch):
        out = serve(examples=tf.constant(records[i:i + batch]))
        for key in keys:
            parts.setdefault(key, []).append(out[key].numpy())
    result = {k: np.concatenate(v) for k, v in parts.items()}
    result["truth"] = np.array(
        [first_bytes(tf.train.Example.FromString(r), features.CATEGORY_PATH) for r in records], dtype=object)
    labelled = np.array([bool(t) for t in result["truth"]])
    return {k: v[labelled] for k, v in result.items()}


def _is_node_of(pred: bytes, truth: bytes) -> bool:
    p, t = pred.decode().split(" > "), truth.decode().split(" > ")
    return bool(pred) and t[: len(p)] == p


def _stats(pred_paths, full_paths, truth, confidence: float = 0.95):
    """Coverage at any depth (a path returned), at full depth (the whole decoded path
    returned, no back-off) and the precision of what is returned (true path or an
    ancestor) with its Clopper-Pearson interval."""
    from evaluator.stats import clopper_pearson

    returned = np.array([bool(p) for p in pred_paths])
    full = np.array([bool(p) and p == f for p, f in zip(pred_paths, full_paths)])
    right = sum(_is_node_of(p, t) for p, t, m in zip(pred_paths, truth, returned) if m)
    return returned.mean(), full.mean(), clopper_pearson(right, int(returned.sum()), confidence)


def _level_arrays(pred: dict, taxonomy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted class ids, confidences, true class ids), each [products, levels]."""
    from schema import features
    from schema.taxonomy import split_path

    ids = np.zeros((len(pred["truth"]), taxonomy.depth), np.int32)
    conf = np.zeros(ids.shape, np.float32)
    for k in range(1, taxonomy.depth + 1):
        index = taxonomy.index(k)
        names = pred[features.out_level_class(k)]
        ids[:, k - 1] = [index.get(n.decode(), 0) if n else 0 for n in names]
        conf[:, k - 1] = pred[features.out_level_confidence(k)]
    true = np.array([taxonomy.label_ids(split_path(t.decode())) for t in pred["truth"]], np.int32)
    return ids, conf, true


def _backoff_paths(taxonomy, thresholds: dict, ids: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """The model's own decoding rule (trainer.model.decode_outputs) with other thresholds."""
    import tensorflow as tf

    from schema import features
    from trainer.model import class_tables, decode_outputs, threshold_tables

    out = decode_outputs(tf.constant(ids), tf.constant(conf), class_tables(taxonomy),
                         threshold_tables(taxonomy, thresholds))
    return out[features.OUT_PATH].numpy()


def _subsample(n: int, share: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < share


def evaluate(model_dir: str, examples_uri: str, targets: list[float],
             calibration_shares: tuple[float, ...] = (0.5,)) -> list[tuple[float, str, tuple]]:
    """Per target precision, on the eval split: one global threshold, the per-node rule on
    the calibration sample (the previous rule) and the per-node rule with 90% confidence
    (shipped), the latter also fitted on part of the calibration split to show what its size
    buys. Every threshold is chosen on calibration products only."""
    from schema import features, serving_layout
    from schema.taxonomy import Taxonomy
    from trainer.thresholds import DEFAULT_CONFIDENCE, NEVER, choose_thresholds, lowest_threshold

    taxonomy = Taxonomy.from_dict(serving_layout.read_asset(model_dir, serving_layout.ASSETS_TAXONOMY))
    calib = _predict(model_dir, split_records(examples_uri, "calibration"), taxonomy.depth)
    evals = _predict(model_dir, split_records(examples_uri, "eval"), taxonomy.depth)
    full, truth = evals[features.OUT_FULL_PATH], evals["truth"]
    calib_exact = np.array([p == t for p, t in zip(calib[features.OUT_FULL_PATH], calib["truth"])])
    cal_ids, cal_conf, cal_true = _level_arrays(calib, taxonomy)
    ev_ids, ev_conf, _ = _level_arrays(evals, taxonomy)
    rows = [(0.0, "no thresholding (full decoded path)", _stats(full, full, truth))]
    for target in targets:
        t = lowest_threshold(calib[features.OUT_FULL_CONFIDENCE], calib_exact, target, confidence=None)
        t = NEVER if t is None else t
        kept = np.where(evals[features.OUT_FULL_CONFIDENCE] >= t, full, b"")
        rows.append((target, f"one global threshold, leaf or nothing (t={t:.3f})", _stats(kept, full, truth)))
        variants = [("per-node, precision on the calibration sample (previous rule)", None, 1.0)]
        variants += [(f"per-node, {DEFAULT_CONFIDENCE:.0%} confidence (shipped)", DEFAULT_CONFIDENCE, 1.0)]
        variants += [(f"per-node, {DEFAULT_CONFIDENCE:.0%} confidence, {share:.0%} of calibration",
                      DEFAULT_CONFIDENCE, share) for share in calibration_shares]
        for name, confidence, share in variants:
            use = _subsample(len(cal_ids), share)
            thresholds = choose_thresholds(taxonomy, cal_ids[use], cal_conf[use], cal_true[use], target,
                                           confidence=confidence)
            backed = _backoff_paths(taxonomy, thresholds, ev_ids, ev_conf)
            rows.append((target, name, _stats(backed, full, truth)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.95, 0.98, 0.99])
    args = parser.parse_args(argv)

    from schema.mlmd import newest, open_store
    from schema.config import PipelineConfig

    root = str(Path(args.pipeline_root).resolve())
    config = PipelineConfig.local(".", "fashion", pipeline_root=root)
    store = open_store(config.metadata_path)
    model = newest(store, "Model", producer="TaxonomyTrainer")
    # The Embedder's output when the pipeline has one: the model reads its embeddings
    # (from ExampleGen's examples it would get zeros for them and be scored without them).
    examples = newest(store, "Examples", producer="Embedder") or newest(store, "Examples", having="rows_ingested")
    if model is None or examples is None:
        print(f"no trained model or examples recorded under {root}", file=sys.stderr)
        return 2
    rows = evaluate(os.path.join(model.uri, "Format-Serving"), examples.uri, args.targets)
    print(f"model {model.uri}\neval split of {examples.uri}; thresholds chosen on the calibration split\n")
    print("| target | strategy | coverage (any depth) | coverage (full depth) | precision of what is returned [95% CI] | meets target |")
    print("|---|---|---|---|---|---|")
    for target, name, (coverage, full_depth, precision) in rows:
        meets = "" if not target else ("yes" if precision.value >= target else "**no**")
        print(f"| {target or '-'} | {name} | {coverage:.3f} | {full_depth:.3f} | {precision.text()} | {meets} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
