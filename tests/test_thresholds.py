import numpy as np

from schema.taxonomy import Taxonomy
from tests.test_taxonomy import PATHS
from trainer.thresholds import NEVER, choose_thresholds, lowest_threshold


def test_lowest_threshold_reaches_target_with_most_coverage():
    conf = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    hit = np.array([1, 1, 1, 0, 1, 0])
    assert lowest_threshold(conf, hit, 1.0) == 0.8
    assert lowest_threshold(conf, hit, 0.8) == 0.6  # 4 of 5 right
    assert lowest_threshold(conf, np.zeros(6), 0.5) is None
    # ties are cut together
    assert lowest_threshold(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1]), 1.0) is None


def test_a_set_that_reaches_the_target_everywhere_is_not_cut_at_its_lowest_confidence():
    conf = np.array([0.99, 0.98, 0.97, 0.95])
    assert lowest_threshold(conf, np.ones(4), 0.95) == 0.95  # no fallback given: the lowest seen
    assert lowest_threshold(conf, np.ones(4), 0.95, if_all_reach=0.3) == 0.3
    assert lowest_threshold(conf, np.ones(4), 0.95, if_all_reach=0.99) == 0.95  # never above the lowest seen
    # A cut inside the set is where the precision drops, whatever the fallback.
    hit = np.array([1, 1, 1, 0])
    assert lowest_threshold(conf, hit, 1.0, if_all_reach=0.0) == 0.97


def test_per_node_thresholds_and_level_fallback():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    apparel, footwear = tax.index(1)["Apparel"], tax.index(1)["Footwear"]
    rng = np.random.default_rng(1)
    n = 200
    pred = np.zeros((n, 3), int)
    true = np.zeros((n, 3), int)
    pred[:, 0] = np.where(np.arange(n) < 150, apparel, footwear)
    conf = np.ones((n, 3)) * 0.5
    conf[:, 0] = rng.uniform(0, 1, n)
    # Apparel predictions are right only when confident; Footwear ones always right.
    true[:, 0] = np.where((pred[:, 0] == apparel) & (conf[:, 0] < 0.5), footwear, pred[:, 0])
    out = choose_thresholds(tax, pred, conf, true, target_precision=0.95)
    assert 0.45 <= out["nodes"]["Apparel"] <= 0.55
    assert out["nodes"]["Footwear"] == min(conf[150:, 0])
    assert out["levels"]["2"] == NEVER  # only STOP predicted at level 2: no real predictions


def test_a_node_whose_predictions_are_all_right_takes_its_levels_threshold():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    apparel, footwear = tax.index(1)["Apparel"], tax.index(1)["Footwear"]
    n = 100
    pred = np.zeros((n, 3), int)
    pred[:, 0] = np.where(np.arange(n) < 50, apparel, footwear)
    true = pred.copy()
    conf = np.ones((n, 3)) * 0.5
    conf[:50, 0], conf[50:, 0] = np.linspace(0.2, 1.0, 50), np.linspace(0.9, 1.0, 50)
    true[:10, 0] = footwear  # Apparel's 10 least confident predictions are wrong
    out = choose_thresholds(tax, pred, conf, true, target_precision=0.95)
    level = out["levels"]["1"]
    assert level < 0.9  # the level's cut sits among the low-confidence Apparel predictions
    assert out["nodes"]["Footwear"] == level  # all right: not cut at its lowest confidence (0.9)
    assert out["nodes"]["Apparel"] > level  # its own cut: its wrong predictions are its alone
