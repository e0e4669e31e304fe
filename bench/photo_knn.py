"""Photo only: the nearest train photos' vote beside the model's photo-only path, on calibration.

    PYTHONPATH=. .venv/bin/python bench/photo_knn.py --pipeline-root pipelines/fashion

Issue 19 asks 0.92 leaf accuracy from a photo alone. Catalog photos repeat (one product in
several colours, one studio), so a train photo close to a product's photo often has its
category. On the calibration split's photo products:

- k-NN over the train split's frozen image embeddings (centred on the train mean, cosine),
  each of the k nearest voting exp(cosine / temperature) for its leaf, for a few k;
- the logistic-regression probe on the same embeddings (bench/quality.py's);
- the root's trained model with the title blanked (its photo-only path), as `categorize`
  sends a product without text;
- a switch between the two: the vote's share of its leaf against the model's path
  confidence times tau, tau fitted on one random half of the products and scored on the
  other, three times (the halves differ by seed): what combining them could be worth.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def knn_vote_shares(train_emb: np.ndarray, train_truth: Sequence[str], query: np.ndarray, k: int,
                    temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(classes [C], each query row's share of the vote per class [N, C]): the k nearest
    train rows (cosine, centred on the train mean) each vote exp(cosine / temperature) for
    its class."""
    mean = train_emb.mean(axis=0)

    def unit(x):
        x = x - mean
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    classes, labels = np.unique(np.asarray(train_truth), return_inverse=True)
    sims = unit(query) @ unit(train_emb).T
    nearest = np.argsort(-sims, axis=1)[:, :k]
    votes = np.exp(np.take_along_axis(sims, nearest, axis=1) / temperature)
    shares = np.zeros((len(query), len(classes)))
    np.add.at(shares, (np.arange(len(query))[:, None], labels[nearest]), votes)
    return classes, shares / shares.sum(axis=1, keepdims=True)


def knn_votes(train_emb: np.ndarray, train_truth: Sequence[str], query: np.ndarray, k: int,
              temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(class with the most vote, its share of the vote) per query row."""
    classes, shares = knn_vote_shares(train_emb, train_truth, query, k, temperature)
    best = shares.argmax(axis=1)
    return classes[best], shares[np.arange(len(query)), best]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline-root", type=Path, default=Path("pipelines/fashion"))
    parser.add_argument("--catalog", type=Path, default=Path("../shared/datasets/fashion"))
    parser.add_argument("--k", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--c", type=float, default=0.1, help="the probe's C (bench/quality.py chooses 0.1 on calibration)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from bench.quality import read_split, embedding_probe, ensure_trained, without_text
    from schema import features

    model_dir, examples_uri = ensure_trained("fashion", args.catalog, args.pipeline_root, 1)
    train, calib = read_split(examples_uri, "train"), read_split(examples_uri, "calibration")
    train, calib = train.subset(train.has_image), calib.subset(calib.has_image)
    truth = np.asarray(calib.truth)
    print(f"{len(train.truth):,} train photos, {len(truth):,} calibration products with a photo\n")
    print("| photo only (calibration) | leaf accuracy |\n|---|---|")
    for k in args.k:
        leaves, _ = knn_votes(train.image_emb, train.truth, calib.image_emb, k, args.temperature)
        print(f"| {k}-NN vote | {np.mean(leaves == truth):.4f} |")
    probe = embedding_probe(train.image_emb, train.truth, args.c)
    print(f"| logistic-regression probe | {np.mean(np.asarray(probe(calib.image_emb)) == truth):.4f} |")

    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    out = serve(examples=tf.constant([r.SerializeToString() for r in without_text(calib.records, None)]))
    model_leaf = np.asarray([p.decode() for p in out[features.OUT_FULL_PATH].numpy()])
    model_conf = out[features.OUT_FULL_CONFIDENCE].numpy().reshape(-1)
    print(f"| the model, title blanked | {np.mean(model_leaf == truth):.4f} |")
    leaves, shares = knn_votes(train.image_emb, train.truth, calib.image_emb, max(args.k), args.temperature)
    print(f"| either right (the most a switch could get) | {np.mean((model_leaf == truth) | (leaves == truth)):.4f} |")

    def switched(idx, tau):
        return np.where(shares[idx] > tau * model_conf[idx], leaves[idx], model_leaf[idx])

    print(f"\n| random halves (seed) | tau fitted on the first | model, second half | switch, second half |\n|---|---|---|---|")
    taus = np.linspace(0.2, 3.0, 29)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(len(truth))
        fit, held = order[: len(truth) // 2], order[len(truth) // 2:]
        tau = max(taus, key=lambda t: np.mean(switched(fit, t) == truth[fit]))
        print(f"| {seed} | {tau:.1f} | {np.mean(model_leaf[held] == truth[held]):.4f} | "
              f"{np.mean(switched(held, tau) == truth[held]):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
