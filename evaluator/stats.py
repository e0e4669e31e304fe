"""Confidence intervals for evaluation metrics, and the gate's decision rules on them.

Plain numpy/scipy, no TFMA: the TFMA metrics (`evaluator/metrics.py`), the run summary,
the review report and the model card all call these, and the tests check them without TFX.

Two kinds of interval, both over the same eval examples for both models:
- A proportion (leaf accuracy, coverage, accuracy at a level: one 0/1 outcome per product)
  gets the exact Clopper-Pearson interval, and the difference of two models' proportions
  gets the exact paired interval conditional on the discordant products (McNemar): of the
  d products exactly one model gets right, c go to the candidate; c ~ Binomial(d, p) and the
  difference is d/n * (2p - 1). It holds on a 5-product slice, where a bootstrap would call
  "3 of 3 lost" certain.
- Any other metric (hierarchical F1, precision over the covered products: ratios of sums)
  gets a percentile interval from a Poisson bootstrap over products; the difference uses
  the same resampling weights for both models (paired bootstrap).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple, Optional

import numpy as np
from scipy import stats as _scipy_stats

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 20261201


class Interval(NamedTuple):
    value: float
    lower: float
    upper: float

    def text(self, digits: int = 3) -> str:
        if math.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.lower:.{digits}f}, {self.upper:.{digits}f}]"


NAN_INTERVAL = Interval(float("nan"), float("nan"), float("nan"))


def _beta_ppf(q: float, a: float, b: float) -> float:
    return float(_scipy_stats.beta.ppf(q, a, b))


def clopper_pearson(successes: float, trials: float, confidence: float) -> Interval:
    """Exact two-sided interval for a binomial proportion at `confidence` (0.95: each side
    2.5%). Counts are rounded (weights are 1 in this pipeline)."""
    k, n = int(round(successes)), int(round(trials))
    if n <= 0:
        return NAN_INTERVAL
    alpha = 1.0 - confidence
    lower = 0.0 if k == 0 else _beta_ppf(alpha / 2, k, n - k + 1)
    upper = 1.0 if k == n else _beta_ppf(1 - alpha / 2, k + 1, n - k)
    return Interval(k / n, lower, upper)


def precision_lower_bound(correct: np.ndarray, total: np.ndarray, confidence: float) -> np.ndarray:
    """One-sided Clopper-Pearson lower bound at `confidence` (0.9: precision is at least this
    with 90% confidence) for arrays of counts; 0 where nothing was predicted."""
    correct = np.asarray(correct, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = _scipy_stats.beta.ppf(1.0 - confidence, correct, total - correct + 1)
    return np.where((total > 0) & (correct > 0), np.nan_to_num(bound, nan=0.0), 0.0)


def paired_proportion_difference(candidate: np.ndarray, baseline: np.ndarray,
                                 confidence: float) -> Interval:
    """candidate minus baseline share of 1s, with the exact paired (McNemar) interval.

    `candidate` and `baseline` are 0/1 outcomes of the same products, in the same order."""
    candidate = np.asarray(candidate, dtype=bool)
    baseline = np.asarray(baseline, dtype=bool)
    n = len(candidate)
    if n == 0:
        return NAN_INTERVAL
    c = int(np.sum(candidate & ~baseline))  # only the candidate right
    b = int(np.sum(~candidate & baseline))  # only the baseline right
    d = b + c
    diff = (c - b) / n
    if d == 0:
        return Interval(0.0, 0.0, 0.0)
    p = clopper_pearson(c, d, confidence)
    return Interval(diff, d / n * (2 * p.lower - 1), d / n * (2 * p.upper - 1))


def poisson_weights(n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """[samples, n] Poisson(1) resampling weights (TFMA's bootstrap uses the same scheme)."""
    return np.random.default_rng(seed).poisson(1.0, size=(samples, n)).astype(np.float64)


ValueFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]
Counters = Mapping[str, float]  # counter name -> total over the products
Replicates = Mapping[str, np.ndarray]  # counter name -> [samples] totals under resampling weights


def replicate(counters: Mapping[str, np.ndarray], weights: np.ndarray) -> dict[str, np.ndarray]:
    """Per-product counters ({name: [n]}) summed under each resample's weights ([samples, n])."""
    return {name: weights @ np.asarray(values, np.float64) for name, values in counters.items()}


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def bootstrap_interval(value_fn: ValueFn, totals: Counters, replicates: Replicates, confidence: float,
                       baseline: Optional[tuple[Counters, Replicates]] = None) -> Interval:
    """Percentile interval of `value_fn` (a function of counter totals) over the bootstrap
    `replicates`; with `baseline` (its totals and replicates under the SAME weights), of
    candidate minus baseline: the paired bootstrap."""
    value = float(value_fn(totals))
    samples = np.asarray(value_fn(replicates), np.float64)
    if baseline is not None:
        value -= float(value_fn(baseline[0]))
        samples = samples - np.asarray(value_fn(baseline[1]), np.float64)
    if math.isnan(value):
        return NAN_INTERVAL
    lower, upper = _percentiles(samples, confidence)
    if math.isnan(lower):
        return Interval(value, value, value)
    return Interval(value, min(lower, value), max(upper, value))


# ---------------------------------------------------------------------------- the gate


def is_win(gain: Interval, min_gain: float) -> bool:
    """The candidate wins only when the lower confidence bound of its gain reaches
    `min_gain` (> 0): a tie, whose interval is [0, 0], is not a win."""
    return not math.isnan(gain.lower) and gain.lower >= min_gain


def blocks(diff: Interval, tolerance: float) -> bool:
    """A regression blocks only when it is significant (the whole interval below 0) and
    larger than `tolerance`."""
    return not math.isnan(diff.upper) and diff.upper < 0 and diff.value < -tolerance


def win_value(gain: Interval) -> float:
    """The number the TFMA win threshold checks: the gain's lower confidence bound."""
    return gain.lower


def block_value(diff: Interval, tolerance: float) -> float:
    """The number a TFMA `>= 0` threshold checks for `blocks`: negative exactly when the
    regression is significant and beyond the tolerance."""
    if math.isnan(diff.value):
        return 0.0  # no labelled product in the slice: nothing to judge
    return max(diff.upper, diff.value + tolerance)
