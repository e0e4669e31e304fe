"""Smart thresholding: per-node confidence thresholds chosen on the calibration split.

Each threshold is chosen so that the precision of what it keeps meets the target with a
stated confidence (default 90%), not just on the calibration sample: a cut is accepted
only where the one-sided Clopper-Pearson lower bound of its precision (k right of n kept)
reaches the target. With few calibration products the bound is far below the point
estimate (20 of 20 right bounds precision at 0.891 at 90%), so a node needs evidence, not
luck, to get its own threshold.

- A level's threshold is the rule for its nodes without enough evidence of their own:
  the lowest cut whose bound reaches the target over all the level's predictions pooled;
  none reaches it: the level is never kept for them (they back off to the parent).
- A node with at least `min_support` calibration predictions gets the lowest cut whose
  bound reaches the target. None reaches it: its level's rule, but never looser than the
  cut its own calibration precision points at (a node seen to miss the target is not let
  through by its neighbours' evidence). All its predictions pass: min(its least confident
  one, the level's rule): it shows no confidence where its precision drops.
At inference a level whose confidence is under its node's threshold is dropped and the
product keeps the parent: a shorter but correct path instead of a wrong leaf (see
`trainer.model.decode_outputs`).
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from schema.taxonomy import STOP, Taxonomy

NEVER = 1.01  # a threshold no confidence reaches: the node is never predicted
MIN_SUPPORT = 10
DEFAULT_CONFIDENCE = 0.9  # precision >= target with this confidence (one-sided)


def _precision_bound(hits: np.ndarray, kept: np.ndarray, confidence: Optional[float]) -> np.ndarray:
    """Precision of each cut (`hits` right of `kept`): its Clopper-Pearson lower bound at
    `confidence`, or the point estimate when `confidence` is None."""
    if confidence is None:
        return hits / kept
    from evaluator.stats import precision_lower_bound

    return precision_lower_bound(hits, kept, confidence)


def lowest_threshold(confidences: np.ndarray, correct: np.ndarray, target: float,
                     if_all_reach: Optional[float] = None,
                     confidence: Optional[float] = DEFAULT_CONFIDENCE) -> Optional[float]:
    """Smallest t whose kept predictions (conf >= t) have precision >= target with
    `confidence` (None: on the calibration sample itself), or None when no t reaches it.

    When every prediction passes, the calibration set shows no confidence below which
    precision drops, and the lowest confidence seen is only where the sample happens to end
    (a confident model's node of 300 right predictions would drop every product less
    confident than the least confident of them). Then the threshold is `if_all_reach` (the
    level's threshold for a node, 0 for a level) when that is lower."""
    if len(confidences) == 0:
        return None
    order = np.argsort(-confidences, kind="stable")
    conf, hit = confidences[order], correct[order].astype(np.float64)
    hits = np.cumsum(hit)
    kept = np.arange(1, len(hit) + 1, dtype=np.float64)
    precision = _precision_bound(hits, kept, confidence)
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
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict:
    """Arrays are [products, levels] of class ids / confidences (true ids: -1 = masked).

    Returns {"target_precision", "confidence", "levels": {k: t}, "nodes": {full path: t},
    "support": {full path: calibration predictions}, "fallback": [nodes on the level rule
    although they had `min_support` predictions]}.
    """
    levels: dict[str, float] = {}
    nodes: dict[str, float] = {}
    support: dict[str, int] = {}
    fallback: list[str] = []
    for k in range(1, taxonomy.depth + 1):
        pred, conf, true = predicted_ids[:, k - 1], confidences[:, k - 1], true_ids[:, k - 1]
        real = pred > 0 if k > 1 else np.ones_like(pred, dtype=bool)  # STOP is not a prediction
        correct = pred == true
        level_t = lowest_threshold(conf[real], correct[real], target_precision, if_all_reach=0.0,
                                   confidence=confidence)
        levels[str(k)] = NEVER if level_t is None else level_t
        for c, path in enumerate(taxonomy.levels[k - 1].classes):
            if path == STOP:
                continue
            mine = real & (pred == c)
            n = int(mine.sum())
            if n < min_support:
                continue
            t = lowest_threshold(conf[mine], correct[mine], target_precision, if_all_reach=levels[str(k)],
                                 confidence=confidence)
            if t is None:  # not enough evidence for a cut of its own
                seen = lowest_threshold(conf[mine], correct[mine], target_precision, if_all_reach=levels[str(k)],
                                        confidence=None)
                t = max(levels[str(k)], NEVER if seen is None else seen)
                fallback.append(path)
            nodes[path] = t
            support[path] = n
    return {"target_precision": target_precision, "confidence": confidence, "levels": levels,
            "nodes": nodes, "support": support, "fallback": fallback}


def collect_predictions(model, batches: Iterable[dict], depth: int, beam_width: int):
    """Runs beam search over transformed batches; returns (pred ids, confidences, true ids).

    The search runs as one traced graph (`reduce_retracing`: the last, smaller batch reuses
    it), not op by op in eager mode, where each of its hundreds of small ops a batch paid
    Python's dispatch."""
    import tensorflow as tf

    from schema import features

    search = tf.function(lambda batch: model.beam_search(batch, beam_width), reduce_retracing=True)
    preds, confs, trues = [], [], []
    for batch in batches:
        ids, conf = search(batch)
        preds.append(ids.numpy())
        confs.append(conf.numpy())
        trues.append(np.stack([batch[features.label_id_feature(k)].numpy().reshape(-1)
                               for k in range(1, depth + 1)], axis=1))
    return np.concatenate(preds), np.concatenate(confs), np.concatenate(trues)
