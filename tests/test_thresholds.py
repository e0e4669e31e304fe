import numpy as np

from evaluator.stats import precision_lower_bound
from schema.taxonomy import Taxonomy
from tests.test_taxonomy import PATHS
from trainer.thresholds import NEVER, choose_thresholds, lowest_threshold


def test_lowest_threshold_on_the_sample_reaches_target_with_most_coverage():
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    hit = np.array([1, 1, 1, 0, 1, 0])
    assert lowest_threshold(conf, hit, 1.0, confidence=None) == 0.8
    assert lowest_threshold(conf, hit, 0.8, confidence=None) == 0.6  # 4 of 5 right
    assert lowest_threshold(conf, np.zeros(6), 0.5, confidence=None) is None
    # ties are cut together
    assert lowest_threshold(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1]), 1.0, confidence=None) is None


def test_a_cut_needs_evidence_not_luck():
    """20 of 20 right is 100% on the sample, but at 90% confidence precision is only known
    to be >= 0.891: not enough for 0.95. 45 of 45 bounds it at 0.950."""
    conf = np.linspace(0.99, 0.5, 20)
    assert lowest_threshold(conf, np.ones(20), 0.95, confidence=None) == conf[-1]
    assert lowest_threshold(conf, np.ones(20), 0.95, confidence=0.9) is None
    assert float(precision_lower_bound(20, 20, 0.9)) < 0.95 <= float(precision_lower_bound(45, 45, 0.9))
    conf = np.linspace(0.99, 0.5, 45)
    assert lowest_threshold(conf, np.ones(45), 0.95, confidence=0.9) == conf[-1]


def test_the_bounded_cut_is_stricter_than_the_sample_cut():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0, 1, 2000)
    hit = rng.uniform(0, 1, 2000) < 0.8 + 0.2 * conf  # precision rises with confidence
    sample = lowest_threshold(conf, hit, 0.95, confidence=None)
    bounded = lowest_threshold(conf, hit, 0.95, confidence=0.9)
    assert sample is not None and bounded is not None and bounded > sample
    kept = conf >= bounded
    assert precision_lower_bound(hit[kept].sum(), kept.sum(), 0.9) >= 0.95


def test_a_set_that_reaches_the_target_everywhere_is_not_cut_at_its_lowest_confidence():
    conf = np.linspace(0.99, 0.95, 60)
    assert lowest_threshold(conf, np.ones(60), 0.95) == 0.95  # no fallback given: the lowest seen
    assert lowest_threshold(conf, np.ones(60), 0.95, if_all_reach=0.3) == 0.3
    assert lowest_threshold(conf, np.ones(60), 0.95, if_all_reach=0.99) == 0.95  # never above the lowest seen
    # A cut inside the set is where the precision drops, whatever the fallback.
    hit = np.r_[np.ones(50), np.zeros(10)]
    assert lowest_threshold(conf, hit, 1.0, if_all_reach=0.0, confidence=None) == conf[49]


def _two_top_levels(n: int, split: int):
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    apparel, footwear = tax.index(1)["Apparel"], tax.index(1)["Footwear"]
    pred = np.zeros((n, 3), int)
    pred[:, 0] = np.where(np.arange(n) < split, apparel, footwear)
    return tax, apparel, footwear, pred


def test_per_node_thresholds_and_level_fallback():
    n = 2000
    tax, apparel, footwear, pred = _two_top_levels(n, 1500)
    rng = np.random.default_rng(1)
    conf = np.ones((n, 3)) * 0.5
    conf[:, 0] = rng.uniform(0, 1, n)
    # Apparel predictions are right only when confident; Footwear ones always right.
    true = pred.copy()
    true[:, 0] = np.where((pred[:, 0] == apparel) & (conf[:, 0] < 0.5), footwear, pred[:, 0])
    out = choose_thresholds(tax, pred, conf, true, target_precision=0.95)
    assert 0.45 <= out["nodes"]["Apparel"] <= 0.55
    assert out["nodes"]["Footwear"] == min(min(conf[1500:, 0]), out["levels"]["1"])
    assert out["levels"]["2"] == NEVER  # only STOP predicted at level 2: no real predictions
    assert out["confidence"] == 0.9 and out["fallback"] == []


def test_a_node_without_enough_evidence_takes_its_levels_rule_but_never_a_looser_one():
    n = 1000
    tax, apparel, footwear, pred = _two_top_levels(n, 970)
    true = pred.copy()
    conf = np.ones((n, 3)) * 0.5
    conf[:970, 0] = np.linspace(0.2, 1.0, 970)
    conf[970:, 0] = np.linspace(0.6, 1.0, 30)
    true[:20, 0] = footwear  # Apparel's 20 least confident predictions are wrong
    out = choose_thresholds(tax, pred, conf, true, target_precision=0.95)
    level = out["levels"]["1"]
    # Footwear: 30 of 30 right is too little evidence for 0.95 at 90%: the level's rule.
    assert "Footwear" in out["fallback"] and out["nodes"]["Footwear"] == level
    # A small node seen to miss the target keeps at least its own cut.
    true[975:, 0] = apparel  # 25 of Footwear's 30 wrong
    out = choose_thresholds(tax, pred, conf, true, target_precision=0.95)
    assert out["nodes"]["Footwear"] > out["levels"]["1"]


def test_collected_predictions_are_the_beam_search_of_each_batch_whatever_its_size():
    """collect_predictions runs the search as one traced graph: batches of other sizes (the
    calibration split's last) reuse it and give what the model's own search gives."""
    import dataclasses

    import tensorflow as tf

    from schema import features
    from tests.test_model import _inputs
    from trainer.model import HierarchicalClassifier
    from trainer.presets import get_preset
    from trainer.thresholds import collect_predictions

    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), ngram_init_scale=0.5)
    model = HierarchicalClassifier(tax, preset)
    batches = []
    for n in (16, 16, 5):
        batch = _inputs(n, preset.hash_buckets)
        for k in range(1, 4):
            batch[features.label_id_feature(k)] = tf.constant(np.arange(n) % 3 + k, tf.int64)
        batches.append(batch)
    preds, confs, trues = collect_predictions(model, batches, depth=3, beam_width=3)
    expected = [model.beam_search(b, 3) for b in batches]
    np.testing.assert_array_equal(preds, np.concatenate([ids.numpy() for ids, _ in expected]))
    np.testing.assert_allclose(confs, np.concatenate([c.numpy() for _, c in expected]), rtol=1e-5)
    assert trues.shape == (37, 3) and trues[20, 1] == 4 % 3 + 2
