"""The photo benches behind BENCHMARKS.md's "What was tried for issue 19" rows: the split image
network of bench/image_finetune.py must be the encoder's own network, and the gated fusion
of bench/photo_fusion.py must leave a confident text prediction alone."""
import numpy as np

from bench import photo_fusion


def test_stored_activations_and_keras_top_reproduce_the_image_encoder():
    """ONNX up to the last block + the tf_keras top rebuilt from the checkpoint = the
    encoder's pooled features, so fine-tuning starts from exactly the frozen embedding."""
    from bench.image_finetune import build_top, predict_batches, stem_activations, stem_session
    from schema.encoders import ImageEncoder, efficientnet_lite0
    from schema.encoders.torch_checkpoint import load_state_dict

    pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    weights = load_state_dict(efficientnet_lite0.weights_path())
    session, tap = stem_session(weights, threads=1)
    activations = stem_activations(session, tap, list(pixels))
    assert activations.shape == (2, 7, 7, 192) and activations.dtype == np.float16
    block, head = build_top(weights, "block+head")
    assert block.trainable and head.trainable
    features = predict_batches(head, predict_batches(block, activations))
    expected = ImageEncoder(threads=1).embed_pixels(pixels)
    assert np.max(np.abs(features - expected)) < 0.01 * max(1.0, float(np.max(np.abs(expected))))
    frozen_block, frozen_head = build_top(weights, "none")
    assert not frozen_block.trainable and not frozen_head.trainable


def test_image_networks_bench_reads_the_encoder_s_stages_off_its_checkpoint():
    """bench/image_networks.py builds the other Lite sizes from their checkpoints alone; on
    the encoder's own checkpoint that reading gives the stages the encoder is built from."""
    from bench.image_networks import stages_of
    from schema.encoders import efficientnet_lite0
    from schema.encoders.torch_checkpoint import load_state_dict

    assert stages_of(load_state_dict(efficientnet_lite0.weights_path())) == efficientnet_lite0.LITE0_STAGES


def _log(p):
    return np.log(np.asarray(p, np.float64))


def test_gate_keeps_confident_text_and_photo_decides_the_unsure():
    # 2 products, 2 candidates, 2 levels. Product 0: the text is sure of candidate 0 (0.95),
    # the photo prefers candidate 1. Product 1: the text hesitates (0.55 vs 0.45), the photo
    # is sure of candidate 1.
    text = np.stack([_log([[0.95, 1.0], [0.05, 1.0]]), _log([[0.55, 1.0], [0.45, 1.0]])])
    photo = np.stack([_log([[0.1, 1.0], [0.9, 1.0]]), _log([[0.05, 1.0], [0.95, 1.0]])])
    # no weight: the text path
    assert list(photo_fusion.fused_choice(text, photo, (0.0, 0.0), 2.0)) == [0, 0]
    # weight 1, no gate: product 0's text outweighs the photo (.95 x .1 > .05 x .9), product 1's not
    assert list(photo_fusion.fused_choice(text, photo, (1.0, 0.0), 2.0)) == [0, 1]
    # weight 3, no gate: the photo overrides both (.95 x .1^3 < .05 x .9^3)
    assert list(photo_fusion.fused_choice(text, photo, (3.0, 0.0), 2.0)) == [1, 1]
    # gate 0.9: product 0's confident text stays, product 1 follows the photo
    assert list(photo_fusion.fused_choice(text, photo, (3.0, 0.0), 0.9)) == [0, 1]
    # the weight of a level the candidates agree on changes nothing
    assert list(photo_fusion.fused_choice(text, photo, (0.0, 1.0), 0.9)) == [0, 0]


def test_fit_prefers_the_fusion_that_changes_least():
    text = np.stack([_log([[0.95, 1.0], [0.05, 1.0]]), _log([[0.55, 1.0], [0.45, 1.0]])] * 4)
    photo = np.stack([_log([[0.1, 1.0], [0.9, 1.0]]), _log([[0.05, 1.0], [0.95, 1.0]])] * 4)
    hit = np.array([[True, False], [False, True]] * 4)
    weights, gate, acc = photo_fusion.fit(text, photo, hit)
    assert acc == 1.0 and gate < 0.95 and weights[1] == 0.0 and weights[0] > 0
    # (seed 0 splits the 8 products so that both halves hold a product the photo must decide)
    result = photo_fusion.cross_fitted(text, photo, hit)
    assert result["text path"] == 0.5
    assert result["fused (cross-fitted)"] == 1.0
    assert (result["fused fixed"], result["fused broke"]) == (4, 0)


def test_poolings_of_the_feature_map_say_what_and_where():
    """bench/image_finetune.py --pooling: the average is the encoder's pool, the quadrants
    tell where in the photo a channel fires, the maximum and GeM lean to its strongest cell."""
    import pytest

    from bench.image_finetune import POOLINGS, pool_feature_map

    maps = np.zeros((2, 7, 7, 3), np.float32)
    maps[0, 0, 0, 0] = 6.0  # photo 0: channel 0 fires in the top-left corner only
    maps[1, 6, 6, 0] = 6.0  # photo 1: the same, bottom-right
    maps[:, :, :, 1] = 2.0  # channel 1: everywhere
    gap = pool_feature_map(maps, "gap")
    np.testing.assert_allclose(gap, maps.mean(axis=(1, 2)))
    np.testing.assert_allclose(gap[0], gap[1])  # the average cannot tell the two apart
    grid = pool_feature_map(maps, "grid2").reshape(2, 4, 3)  # quadrants top-left, top-right, ...
    assert grid[0, 0, 0] > 0 and grid[0, 3, 0] == 0 and grid[1, 0, 0] == 0 and grid[1, 3, 0] > 0
    np.testing.assert_allclose(grid[:, :, 1], 2.0)
    both = pool_feature_map(maps, "gap+gmp")
    assert both.shape == (2, 6) and both[0, 3] == 6.0 and both[0, 4] == 2.0
    gem = pool_feature_map(maps, "gem3")
    assert gap[0, 0] < gem[0, 0] < 6.0 and np.isclose(gem[0, 1], 2.0)
    assert {pool_feature_map(maps, k).shape[1] for k in POOLINGS} == {3, 6, 12, 15}
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_feature_map(maps, "median")
