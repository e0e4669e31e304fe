"""Late, per-level, gated fusion of a model's text path and photo path, fitted on calibration.

Used by `bench/model_selection.py --photo-fusion` on each trained variant. For every
calibration product with a photo, the candidate paths are the union of the model's beams
with the photo removed (the text path) and with the text removed (the photo path). Each
candidate's conditional probability at every level is read from the model teacher-forced
along the candidate (the level heads conditioned on the candidate's parent), once from the
text alone and once from the photo alone. A candidate's fused score is

    sum_k  log P_text(c_k | c_<k) + w_k * log P_photo(c_k | c_<k)

applied only where the text path's own best path has a confidence below `tau` (the gate):
a confident text prediction is left as it is. The weights w_k and tau are chosen on one
half of the calibration products and scored on the other half, both ways (two-fold
cross-fitting), so the reported accuracy is not the accuracy of a fit on the same products.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np

WEIGHTS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
GATES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.01)  # 1.01: no gate, every product is fused


def candidate_paths(model, x_text: dict, x_photo: dict, beam: int) -> np.ndarray:
    """[N, 2 * beam, depth] class ids: the text path's beams, then the photo path's."""
    text_paths, _ = model.beam_search(x_text, beam, all_beams=True)
    photo_paths, _ = model.beam_search(x_photo, beam, all_beams=True)
    text_paths, photo_paths = text_paths.numpy(), photo_paths.numpy()

    def pad(p):  # fewer beams than `beam` (a tiny level): repeat the best one
        return np.concatenate([p, np.repeat(p[:, :1], beam - p.shape[1], axis=1)], axis=1) if p.shape[1] < beam else p

    return np.concatenate([pad(text_paths), pad(photo_paths)], axis=1)


def level_log_probs(model, x: dict, paths: np.ndarray, label_feature: Callable[[int], str]) -> np.ndarray:
    """[N, K, depth] log P(c_k | c_<k, x) of each candidate, the model teacher-forced along
    it (an ensemble: log of its members' mean probability, as its beam search averages).
    A level below a STOP is 0 (the beam search continues a STOP with probability 1)."""
    import tensorflow as tf

    n, k, depth = paths.shape
    flat = paths.reshape(n * k, depth)
    repeated = {name: _repeat(v, k) for name, v in x.items()}
    for level in range(1, depth + 1):
        repeated[label_feature(level)] = tf.constant(flat[:, level - 1], tf.int64)
    out = model(repeated, training=False)
    logp = np.zeros((n * k, depth), np.float64)
    for level in range(1, depth + 1):
        logits = out[f"level_{level}"]
        if len(logits.shape) == 3:  # ensemble members [N, M, C]
            log_probs = tf.reduce_logsumexp(tf.nn.log_softmax(logits), axis=1) - tf.math.log(
                tf.cast(tf.shape(logits)[1], tf.float32))
        else:
            log_probs = tf.nn.log_softmax(logits)
        logp[:, level - 1] = tf.gather(log_probs, flat[:, level - 1], batch_dims=1).numpy()
        if level > 2:
            logp[flat[:, level - 2] == 0, level - 1] = 0.0
    return logp.reshape(n, k, depth)


def _repeat(value, k: int):
    """Each product's row `k` times in a row (dense or sparse features)."""
    import tensorflow as tf

    if isinstance(value, tf.SparseTensor):
        ragged = tf.RaggedTensor.from_sparse(value)
        return tf.gather(ragged, tf.repeat(tf.range(ragged.nrows()), k)).to_sparse()
    return tf.repeat(value, k, axis=0)


def fused_choice(text_lp: np.ndarray, photo_lp: np.ndarray, weights: Sequence[float], gate: float) -> np.ndarray:
    """Index of the chosen candidate per product."""
    text_score = text_lp.sum(axis=2)
    fused = text_score + np.einsum("nkd,d->nk", photo_lp, np.asarray(weights, np.float64))
    text_best = np.argmax(text_score, axis=1)
    confident = np.exp(text_score[np.arange(len(text_score)), text_best]) >= gate
    return np.where(confident, text_best, np.argmax(fused, axis=1))


def fit(text_lp: np.ndarray, photo_lp: np.ndarray, hit: np.ndarray) -> tuple[tuple[float, ...], float, float]:
    """(weights per level, gate, accuracy) best on these products; ties go to the smaller
    total weight and the lower gate (the fusion that changes the fewest text predictions)."""
    depth = text_lp.shape[2]
    best = None
    rows = np.arange(len(hit))
    for weights in itertools.product(WEIGHTS, repeat=depth):
        for gate in GATES:
            acc = float(np.mean(hit[rows, fused_choice(text_lp, photo_lp, weights, gate)]))
            key = (acc, -sum(weights), -gate)
            if best is None or key > best[0]:
                best = (key, weights, gate, acc)
    return best[1], best[2], best[3]


def cross_fitted(text_lp: np.ndarray, photo_lp: np.ndarray, hit: np.ndarray, seed: int = 0) -> dict:
    """Accuracy of the fusion fitted on one half and applied to the other, both ways; plus
    the fit on all products (its parameters, and its in-sample accuracy)."""
    n = len(hit)
    order = np.random.default_rng(seed).permutation(n)
    halves = (order[: n // 2], order[n // 2:])
    chosen = np.zeros(n, int)
    fits = []
    for fit_half, score_half in (halves, halves[::-1]):
        weights, gate, _ = fit(text_lp[fit_half], photo_lp[fit_half], hit[fit_half])
        fits.append((weights, gate))
        chosen[score_half] = fused_choice(text_lp[score_half], photo_lp[score_half], weights, gate)
    weights, gate, in_sample = fit(text_lp, photo_lp, hit)
    text_only = fused_choice(text_lp, photo_lp, [0.0] * text_lp.shape[2], 2.0)
    changed = chosen != text_only
    rows = np.arange(n)
    return {
        "text path": float(np.mean(hit[rows, text_only])),
        "fused (cross-fitted)": float(np.mean(hit[rows, chosen])),
        "fused fixed": int(np.sum(changed & hit[rows, chosen])),
        "fused broke": int(np.sum(changed & hit[rows, text_only])),
        "truth among candidates": float(np.mean(np.any(hit, axis=1))),
        "half fits": fits,
        "all-products fit": (weights, gate, in_sample),
    }
