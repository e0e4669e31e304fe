"""Smart thresholding: per-node confidence thresholds chosen on the calibration split.

For every taxonomy node the threshold is the lowest confidence at which predictions of
that node reach the target precision on calibration products, so coverage is as high as
the precision target allows. Nodes with too few calibration predictions fall back to
their level's threshold, and so does a node whose predictions all reach the target (it
shows no confidence where its precision drops; see `lowest_threshold`). At inference a
level whose confidence is under its node's threshold is dropped and the product keeps the
parent: a shorter but correct path instead of a wrong leaf (see
`trainer.model.decode_outputs`).
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from schema.taxonomy import STOP, Taxonomy

NEVER = 1.01  # a threshold no confidence reaches: the node is never predicted
MIN_SUPPORT = 10


def lowest_threshold(confidences: np.ndarray, correct: np.ndarray, target: float,
                     if_all_reach: Optional[float] = None) -> Optional[float]:
    """Smallest t with precision(conf >= t) >= target, or None when no t reaches it.

    When every prediction reaches the target, the calibration set shows no confidence
    below which precision drops, and the lowest confidence seen is only where the sample
    happens to end (a confident model's node of 300 right predictions would drop every
    product less confident than the least confident of them). Then the threshold is
    `if_all_reach` (the level's threshold for a node, 0 for a level) when that is lower."""
    if len(confidences) == 0:
        return None
    order = np.argsort(-confidences, kind="stable")
    conf, hit = confidences[order], correct[order].astype(np.float64)
    precision = np.cumsum(hit) / np.arange(1, len(hit) + 1)
    # Only cut between distinct confidence values (ties are kept or dropped together).
    last_of_tie = np.r_[conf[1:] != conf[:-1], True]
    ok = np.where((precision >= target) & last_of_tie)[0]
    if len(ok) == 0:
        return None
    lowest = float(conf[ok[-1]])
    if ok[-1] == len(conf) - 1 and if_all_reach is not None:
        return min(lowest, float(if_all_reach))
    return lowest


def choose_thresholds(
    taxonomy: Taxonomy,
    predicted_ids: np.ndarray,
    confidences: np.ndarray,
    true_ids: np.ndarray,
    target_precision: float,
    min_support: int = MIN_SUPPORT,
) -> dict:
    """Arrays are [products, levels] of class ids / confidences (true ids: -1 = masked).

    Returns {"target_precision", "levels": {k: t}, "nodes": {full path: t}, "support": ...}.
    """
    levels: dict[str, float] = {}
    nodes: dict[str, float] = {}
    support: dict[str, int] = {}
    for k in range(1, taxonomy.depth + 1):
        pred, conf, true = predicted_ids[:, k - 1], confidences[:, k - 1], true_ids[:, k - 1]
        real = pred > 0 if k > 1 else np.ones_like(pred, dtype=bool)  # STOP is not a prediction
        correct = pred == true
        level_t = lowest_threshold(conf[real], correct[real], target_precision, if_all_reach=0.0)
        levels[str(k)] = NEVER if level_t is None else level_t
        for c, path in enumerate(taxonomy.levels[k - 1].classes):
            if path == STOP:
                continue
            mine = real & (pred == c)
            n = int(mine.sum())
            if n < min_support:
                continue
            t = lowest_threshold(conf[mine], correct[mine], target_precision, if_all_reach=levels[str(k)])
            nodes[path] = NEVER if t is None else t
            support[path] = n
    return {"target_precision": target_precision, "levels": levels, "nodes": nodes, "support": support}


def collect_predictions(model, batches: Iterable[dict], depth: int, beam_width: int):
    """Runs beam search over transformed batches; returns (pred ids, confidences, true ids)."""
    from schema import features

    preds, confs, trues = [], [], []
    for batch in batches:
        ids, conf = model.beam_search(batch, beam_width)
        preds.append(ids.numpy())
        confs.append(conf.numpy())
        trues.append(np.stack([batch[features.label_id_feature(k)].numpy().reshape(-1)
                               for k in range(1, depth + 1)], axis=1))
    return np.concatenate(preds), np.concatenate(confs), np.concatenate(trues)
