import dataclasses

import numpy as np
import tensorflow as tf

from schema import features
from schema.taxonomy import Taxonomy
from tests.test_taxonomy import PATHS
from trainer.model import (HashedBag, HierarchicalClassifier, HierarchicalEnsemble, build_model, class_tables,
                           decode_outputs, threshold_tables)
from trainer.optimizers import members_cross_entropy
from trainer.presets import get_preset


def _inputs(n: int, buckets: int):
    rng = np.random.default_rng(0)
    indices = [[i, j] for i in range(n) for j in range(4)]
    ids = tf.SparseTensor(indices, rng.integers(0, buckets, len(indices)), [n, 4])
    return {features.TEXT_TOKENS: ids}


def test_beam_search_only_returns_paths_of_the_taxonomy():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = get_preset("small")
    model = HierarchicalClassifier(tax, preset)
    ids, conf = model.beam_search(_inputs(64, preset.hash_buckets), beam_width=3)
    ids, conf = ids.numpy(), conf.numpy()
    assert ids.shape == (64, 3)
    for row, c in zip(ids, conf):
        for k in (2, 3):
            parent, child = row[k - 2], row[k - 1]
            assert tax.child_mask(k)[parent, child] == 1, (row, k)
        assert (np.diff(c) <= 1e-6).all() and (c > 0).all() and (c <= 1 + 1e-6).all()


def test_all_beams_are_distinct_valid_paths_best_first():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), ngram_init_scale=0.5)
    model = HierarchicalClassifier(tax, preset)
    inputs = _inputs(16, preset.hash_buckets)
    best, best_conf = model.beam_search(inputs, beam_width=3)
    paths, conf = model.beam_search(inputs, beam_width=3, all_beams=True)
    paths, conf = paths.numpy(), conf.numpy()
    assert paths.shape == (16, 3, 3) and conf.shape == (16, 3, 3)
    np.testing.assert_array_equal(paths[:, 0], best.numpy())
    np.testing.assert_allclose(conf[:, 0], best_conf.numpy(), rtol=1e-6)
    assert (np.diff(conf[:, :, -1], axis=1) <= 1e-6).all()  # best first
    assert conf[:, :, -1].sum(axis=1).max() <= 1 + 1e-5  # path probabilities of distinct paths
    for row in paths:
        assert len({tuple(p) for p in row}) == 3
        for p in row:
            for k in (2, 3):
                assert tax.child_mask(k)[p[k - 2], p[k - 1]] == 1


def test_teacher_forced_logits_are_masked_to_children():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    model = HierarchicalClassifier(tax, get_preset("small"))
    inputs = _inputs(4, get_preset("small").hash_buckets)
    topwear = tax.index(2)["Apparel > Topwear"]
    inputs[features.label_id_feature(1)] = tf.constant([0, 0, 0, 0], tf.int64)
    inputs[features.label_id_feature(2)] = tf.constant([topwear] * 4, tf.int64)
    logits = model(inputs)["level_3"].numpy()
    probs = tf.nn.softmax(logits).numpy()
    allowed = tax.child_mask(3)[topwear] > 0
    assert np.allclose(probs[:, ~allowed], 0.0)
    assert np.allclose(probs[:, allowed].sum(axis=1), 1.0, atol=1e-5)


def test_thresholds_back_off_to_the_parent():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    i1, i2, i3 = tax.index(1)["Apparel"], tax.index(2)["Apparel > Topwear"], tax.index(3)["Apparel > Topwear > Tshirts"]
    ids = tf.constant([[i1, i2, i3]] * 3)
    conf = tf.constant([[0.99, 0.9, 0.8], [0.99, 0.9, 0.3], [0.4, 0.3, 0.2]])
    thresholds = {"levels": {"1": 0.5, "2": 0.5, "3": 0.5}}
    out = decode_outputs(ids, conf, class_tables(tax), threshold_tables(tax, thresholds))
    paths = [p.decode() for p in out[features.OUT_PATH].numpy()]
    assert paths == ["Apparel > Topwear > Tshirts", "Apparel > Topwear", ""]
    assert out[features.OUT_DEPTH].numpy().tolist() == [3, 2, 0]
    assert np.allclose(out[features.OUT_CONFIDENCE].numpy(), [0.8, 0.9, 0.0])
    assert all(p.decode() == "Apparel > Topwear > Tshirts" for p in out[features.OUT_FULL_PATH].numpy())


def test_modality_dropout_blanks_all_text_or_the_photo_never_both():
    """Photo-only products must be seen in training as serving sees them: no n-grams and
    no sentence embedding at once; products without a photo always keep their sentence
    embedding; n-grams alone are dropped at `ngram_dropout` so the heads learn to read the
    multilingual sentence embedding by itself."""
    preset = dataclasses.replace(get_preset("small"), modality_dropout=0.15, ngram_dropout=0.3)
    model = HierarchicalClassifier(Taxonomy.build(PATHS, max_depth=3, min_count=3), preset,
                                   embedding_features=(features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING))
    n = 4000
    ngrams, text = tf.ones([n, 8]), tf.ones([n, 5])
    photo = tf.concat([tf.ones([n // 2, 3]), tf.zeros([n // 2, 3])], axis=0)  # second half: no photo
    tf.random.set_seed(1)
    _, kept_ngrams, (kept_text,), (kept_photo,) = model._drop_modality(None, ngrams, [text], [photo])
    ngram_on = kept_ngrams.numpy().any(axis=1)
    text_on = kept_text.numpy().any(axis=1)
    photo_on = kept_photo.numpy().any(axis=1)
    with_photo = np.arange(n) < n // 2
    assert not (ngram_on & ~text_on).any(), "when the sentence embedding goes, the n-grams go with it"
    assert (text_on | photo_on)[with_photo].all(), "a product never loses both modalities"
    assert text_on[~with_photo].all(), "a product without a photo keeps its sentence embedding"
    p, q = preset.modality_dropout, preset.ngram_dropout
    assert abs((~text_on[with_photo]).mean() - p) < 0.04
    assert abs((~photo_on[with_photo]).mean() - p) < 0.04
    assert abs((~ngram_on[~with_photo]).mean() - q) < 0.04
    assert abs((~ngram_on[with_photo & text_on]).mean() - q) < 0.04


def test_absent_embeddings_stay_zero_after_normalisation():
    """A missing photo is all zeros at serving and after dropout in training; normalising
    must not turn it into a learned constant the model could mistake for a photo."""
    preset = dataclasses.replace(get_preset("small"), normalize_embeddings=True)
    model = HierarchicalClassifier(Taxonomy.build(PATHS, max_depth=3, min_count=3), preset,
                                   embedding_features=(features.IMAGE_EMBEDDING,))
    x = tf.concat([tf.zeros([2, 1280]), 0.3 * tf.random.stateless_normal([3, 1280], [1, 2]) + 0.2], axis=0)
    out = model._normalise(features.IMAGE_EMBEDDING, x).numpy()
    assert (out[:2] == 0).all()
    assert np.allclose(out[2:].mean(axis=1), 0.0, atol=1e-3) and np.allclose(out[2:].std(axis=1), 1.0, atol=1e-2)


def test_ngram_learning_rate_multiplier_keeps_the_function():
    """The multiplier only rescales how the table is stored: the bag's output for a given
    effective table is the same, so it changes how fast rows learn, not what they mean."""
    ids = _inputs(5, 100)[features.TEXT_TOKENS]
    weights = tf.SparseTensor(ids.indices, tf.linspace(0.5, 2.0, tf.shape(ids.values)[0]), ids.dense_shape)
    plain, fast = HashedBag(100, 8), HashedBag(100, 8, lr_multiplier=10.0)
    plain(ids, weights), fast(ids, weights)  # builds the tables
    table = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    plain.table.assign(table)
    fast.table.assign(table / 10.0)
    assert np.allclose(plain(ids, weights).numpy(), fast(ids, weights).numpy(), atol=1e-5)


def test_photo_only_loss_counts_only_products_with_a_photo():
    """The auxiliary loss trains the heads from the photo alone; products without a photo
    contribute nothing to it, and it exists only in training."""
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), photo_aux_weight=0.5)
    model = HierarchicalClassifier(tax, preset, embedding_features=(features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING))
    inputs = _inputs(4, preset.hash_buckets)
    inputs[features.TEXT_EMBEDDING] = tf.random.stateless_normal([4, 512], [3, 4])
    for k in (1, 2, 3):
        inputs[features.label_id_feature(k)] = tf.constant([1, 1, 1, 1], tf.int64) if k == 1 else \
            tf.zeros([4], tf.int64)
        inputs[features.label_mask_feature(k)] = tf.ones([4])

    def aux_loss(image):
        model({**inputs, features.IMAGE_EMBEDDING: image}, training=True)
        return float(tf.add_n(model.losses)) if model.losses else 0.0

    assert aux_loss(tf.zeros([4, 1280])) == 0.0
    assert aux_loss(tf.concat([tf.ones([1, 1280]), tf.zeros([3, 1280])], 0)) > 0.0
    model({**inputs, features.IMAGE_EMBEDDING: tf.ones([4, 1280])}, training=False)
    assert not model.losses


def test_folding_ngram_ids_is_hashing_into_fewer_buckets():
    """The wide part folds the n-gram ids (id mod wide_buckets); that must be the same
    hashing as preprocessing_fn would do into wide_buckets, so the wide table sees distinct
    n-grams apart as far as its size allows, not an arbitrary remix."""
    from trainer.preprocessing import hashed_ngrams

    wide, full = 2**12, 2**15
    # The n-grams of "slim tee", written out: word 1- and 2-grams, the words' character
    # 3-grams (the preset's widths) with the word's boundary marks, prefixed '#'.
    assert get_preset("small").char_ngram_widths == (3,)
    grams = ["slim", "tee", "slim tee", "#<sl", "#sli", "#lim", "#im>", "#<te", "#tee", "#ee>"]
    full_ids = hashed_ngrams(tf.constant(["slim tee"]), full).values.numpy()
    assert sorted(full_ids) == sorted(tf.strings.to_hash_bucket_fast(grams, full).numpy())
    folded = np.sort(np.mod(full_ids, wide))
    assert (folded == np.sort(tf.strings.to_hash_bucket_fast(grams, wide).numpy())).all()
    # Kept apart as far as the size allows: distinct n-grams land in about as many wide
    # buckets as a uniform hash into wide_buckets fills (a remix would pile them up).
    words = tf.constant([f"item{i}" for i in range(3000)])
    ids = np.unique(tf.strings.to_hash_bucket_fast(words, full).numpy())
    expected = wide * (1 - (1 - 1 / wide) ** len(ids))
    assert abs(len(np.unique(np.mod(ids, wide))) - expected) < 0.03 * expected
    with np.testing.assert_raises(ValueError):
        dataclasses.replace(get_preset("small"), wide_buckets=3000)  # not a divisor of hash_buckets


def test_wide_part_points_an_ngram_at_its_category_and_goes_with_the_ngrams():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), ngram_dropout=0.5)
    model = HierarchicalClassifier(tax, preset)
    n = 64
    rng = np.random.default_rng(1)
    ids = rng.integers(0, preset.hash_buckets, (n, 4))
    ids[:, 0] = 12345  # one n-gram every product has
    inputs = {features.TEXT_TOKENS: tf.sparse.from_dense(tf.constant(ids, tf.int64))}
    model.beam_search(inputs, 3)  # builds the layers
    path = ["Apparel", "Apparel > Topwear", "Apparel > Topwear > Tshirts"]
    table = np.zeros(model.wide.table.shape, np.float32)
    offsets = np.cumsum([0] + model.num_classes)  # the table's columns: level 1's classes, then level 2's, ...
    for k, node in enumerate(path, start=1):
        table[12345 % preset.wide_buckets, offsets[k - 1] + tax.index(k)[node]] = 40.0
    model.wide.table.assign(table / preset.wide_lr_multiplier)
    got, _ = model.beam_search(inputs, 3)
    want = [tax.index(k)[node] for k, node in enumerate(path, start=1)]
    assert (got.numpy() == want).all()
    # Dropping a product's n-grams (modality or n-gram dropout) drops its wide logits too.
    wide, bag, _, _ = model._modalities(inputs)
    tf.random.set_seed(3)
    dropped_wide, dropped_bag, _, _ = model._drop_modality(wide, bag, [tf.ones([n, 4])], [])
    wide_on = np.concatenate([w.numpy() for w in dropped_wide], axis=1).any(axis=1)
    bag_on = dropped_bag.numpy().any(axis=1)
    assert (wide_on == bag_on).all() and 0 < bag_on.sum() < n


def test_ensemble_averages_its_members_level_probabilities():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), members=2, ngram_init_scale=0.5)
    model = build_model(tax, preset)
    assert isinstance(model, HierarchicalEnsemble) and len(model.members) == 2
    inputs = _inputs(32, preset.hash_buckets)
    ids, conf = model.beam_search(inputs, beam_width=3)
    # Level 1 of the best path: its confidence is the members' mean probability of that class.
    member_probs = [tf.nn.softmax(m.level_logits(1, m.encode(inputs)[0], None, m.encode(inputs)[1][0])).numpy()
                    for m in model.members]
    top = ids.numpy()[:, 0]
    mean = (member_probs[0] + member_probs[1]) / 2
    np.testing.assert_allclose(conf.numpy()[:, 0], mean[np.arange(32), top], rtol=1e-5)
    assert not np.allclose(member_probs[0], member_probs[1])  # members start from different weights
    # Two members with the same weights decode exactly as one of them alone.
    model.members[1].set_weights(model.members[0].get_weights())
    ids2, conf2 = model.beam_search(inputs, beam_width=3)
    ids1, conf1 = model.members[0].beam_search(inputs, beam_width=3)
    np.testing.assert_array_equal(ids2.numpy(), ids1.numpy())
    np.testing.assert_allclose(conf2.numpy(), conf1.numpy(), rtol=1e-5)


def test_each_ensemble_member_learns_from_its_own_loss():
    """The ensemble's training output stacks member logits; the loss is the mean of the
    members' cross-entropies, not the cross-entropy of their average, so each member's
    gradient comes from its own prediction alone."""
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    model = build_model(tax, dataclasses.replace(get_preset("small"), members=3))
    inputs = _inputs(8, get_preset("small").hash_buckets)
    for k in (1, 2):
        inputs[features.label_id_feature(k)] = tf.zeros([8], tf.int64)
    assert model(inputs)["level_3"].shape[:2] == (8, 3)  # [products, members, classes]
    # Members that disagree, as trained members do (at initialisation they all say ~uniform).
    stacked = tf.constant(np.random.default_rng(0).normal(scale=3.0, size=(8, 3, 5)), tf.float32)
    labels = np.arange(8) % 5
    logits = stacked.numpy().astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    own = -log_probs[np.arange(8), :, labels]  # [products, members], by hand
    loss = members_cross_entropy(tf.constant(labels), stacked).numpy()
    np.testing.assert_allclose(loss, own.mean(axis=1), rtol=1e-5)
    average = np.exp(log_probs).mean(axis=1)
    assert not np.allclose(loss, -np.log(average[np.arange(8), labels]), rtol=1e-3)
    # Member 0's gradient is its own cross-entropy's gradient (softmax - one-hot, over 3
    # members), whatever the other members predict.
    x = tf.Variable(stacked)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(members_cross_entropy(tf.constant(labels), x))
    grad = tape.gradient(total, x).numpy()[:, 0]
    one_hot = np.eye(logits.shape[-1])[labels]
    np.testing.assert_allclose(grad, (np.exp(log_probs[:, 0]) - one_hot) / 3, atol=1e-5)
    assert build_model(tax, dataclasses.replace(get_preset("small"), members=1)).__class__ is HierarchicalClassifier


def _labelled(inputs: dict, n: int) -> dict:
    """`inputs` with level labels: every product at class 1 of level 1, STOP below."""
    for k in (1, 2, 3):
        inputs[features.label_id_feature(k)] = tf.ones([n], tf.int64) if k == 1 else tf.zeros([n], tf.int64)
        inputs[features.label_mask_feature(k)] = tf.constant([1.0] * (n - 1) + [0.0]) if k == 3 else tf.ones([n])
    return inputs


def test_photo_only_loss_is_the_mean_over_the_products_with_a_photo():
    """Only the products with a photo go through the photo-only pass; the loss is the mean,
    over them, of the masked cross-entropies of the heads fed the photo alone."""
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), photo_aux_weight=0.5, dropout=0.0, modality_dropout=0.0,
                                 ngram_dropout=0.0)
    model = HierarchicalClassifier(tax, preset, embedding_features=(features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING))
    n = 6
    inputs = _labelled(_inputs(n, preset.hash_buckets), n)
    inputs[features.TEXT_EMBEDDING] = tf.random.stateless_normal([n, 512], [3, 4])
    photo = np.array([1, 0, 1, 0, 0, 1], bool)  # the last product's level 3 is masked
    inputs[features.IMAGE_EMBEDDING] = tf.random.stateless_normal([n, 1280], [5, 6]) * photo[:, None]
    model(inputs, training=True)
    loss = float(tf.add_n(model.losses))
    # By hand: each photo product alone, text blanked, through the same layers.
    expected = 0.0
    for i in np.flatnonzero(photo):
        image = inputs[features.IMAGE_EMBEDDING][i:i + 1]
        h = model._fuse(tf.zeros([1, preset.token_dim]), [tf.zeros([1, 512])], [image], training=False)
        parent = None
        for k in (1, 2, 3):
            label = int(inputs[features.label_id_feature(k)][i])
            logits = model.level_logits(k, h, parent).numpy()[0].astype(np.float64)
            ce = np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[label]
            expected += float(inputs[features.label_mask_feature(k)][i]) * ce
            parent = tf.constant([label])
    expected = preset.photo_aux_weight * expected / photo.sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_ensemble_reads_its_shared_wide_table_once_with_each_member_s_result():
    """The ensemble computes the shared wide part once a batch and hands it to every member:
    the training logits and the wide table's gradient are what each member computing its
    own lookup gives."""
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), members=3, dropout=0.0, modality_dropout=0.0,
                                 ngram_dropout=0.0, photo_aux_weight=0.0, ngram_init_scale=0.5)
    model = build_model(tax, preset)
    n = 8
    inputs = _labelled(_inputs(n, preset.hash_buckets), n)
    model(inputs, training=True)  # builds
    table = model.members[0].wide.table
    assert all(m.wide is model.members[0].wide for m in model.members)
    table.assign(tf.random.stateless_normal(table.shape, [1, 2]))
    calls = []
    original = type(model.members[0].wide).call

    def counted(layer, *args, **kwargs):
        calls.append(layer.name)
        return original(layer, *args, **kwargs)

    type(model.members[0].wide).call = counted
    try:
        with tf.GradientTape(persistent=True) as tape:
            once = model(inputs, training=True)
            own = [m(inputs, training=True) for m in model.members]  # each member's own lookup
            loss_once = sum(tf.reduce_sum(v) for v in once.values())
            loss_own = sum(tf.reduce_sum(v) for out in own for v in out.values())
    finally:
        type(model.members[0].wide).call = original
    assert calls.count("wide") == 1 + len(model.members)
    for name in once:
        np.testing.assert_allclose(once[name].numpy(), tf.stack([o[name] for o in own], axis=1).numpy(),
                                   rtol=1e-5, atol=1e-5)
    grad_once, grad_own = (tf.convert_to_tensor(tape.gradient(x, table)) for x in (loss_once, loss_own))
    np.testing.assert_allclose(grad_once.numpy(), grad_own.numpy(), rtol=1e-4, atol=1e-5)
