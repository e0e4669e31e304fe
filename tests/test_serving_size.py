"""The serving model's n-gram tables: one wide table per ensemble, only the rows training
saw, in float16; the same decisions as the full tables, and an export under its bound."""
import dataclasses
import os

import numpy as np
import tensorflow as tf

from schema import features
from schema.taxonomy import Taxonomy
from tests.test_taxonomy import PATHS
from trainer.model import HierarchicalEnsemble, build_model, keep_seen_ngram_rows, ngram_tables
from trainer.presets import get_preset

SERVING_BOUND_BYTES = 150_000_000  # issue 20: the serving model of either catalog


def _titles(rng, n: int, vocabulary: np.ndarray, per_title: int = 6) -> dict:
    ids = rng.choice(vocabulary, (n, per_title))
    weights = rng.uniform(0.2, 2.0, (n, per_title)).astype(np.float32)
    indices = [[i, j] for i in range(n) for j in range(per_title)]
    return {features.TEXT_TOKENS: tf.SparseTensor(indices, ids.reshape(-1).astype(np.int64), [n, per_title]),
            features.TEXT_TOKEN_WEIGHTS: tf.SparseTensor(indices, weights.reshape(-1), [n, per_title])}


def _trained_looking(model, rng) -> None:
    """Weights as training leaves them: the wide table moved away from its zero start."""
    for table in ngram_tables(model):
        if table.name == "wide":
            table.table.assign(rng.normal(0, 0.3, table.table.shape).astype(np.float32))


def test_an_ensemble_shares_one_wide_table_unless_the_preset_says_otherwise():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), members=3)
    shared = build_model(tax, preset)
    assert isinstance(shared, HierarchicalEnsemble)
    assert all(m.wide is shared.members[0].wide for m in shared.members)
    assert len(ngram_tables(shared)) == 3 + 1  # three bags, one wide table
    own = build_model(tax, dataclasses.replace(preset, shared_wide=False))
    assert len({id(m.wide) for m in own.members}) == 3 and len(ngram_tables(own)) == 6


def test_kept_rows_decode_as_the_full_tables_and_unseen_ngrams_add_nothing():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), members=2, ngram_init_scale=0.5)
    model = build_model(tax, preset)
    rng = np.random.default_rng(0)
    seen = rng.choice(preset.hash_buckets, 300, replace=False)
    inputs = _titles(rng, 64, seen)
    model.beam_search(inputs, preset.beam_width)  # builds the tables
    _trained_looking(model, rng)
    want_ids, want_conf = model.beam_search(inputs, preset.beam_width)
    member = model.members[0]
    unseen = np.setdiff1d(np.arange(preset.hash_buckets), seen)[:50]
    mixed = _titles(rng, 16, np.concatenate([seen[:20], unseen]))
    full_table = member.bag.table.numpy()

    keep_seen_ngram_rows(model, seen)

    for table in ngram_tables(model):
        assert table.table.dtype == tf.float16
        assert table.table.shape[0] == np.unique(seen % table.buckets).size + 1  # + the zero row
    got_ids, got_conf = model.beam_search(inputs, preset.beam_width)
    np.testing.assert_array_equal(got_ids.numpy(), want_ids.numpy())
    np.testing.assert_allclose(got_conf.numpy(), want_conf.numpy(), rtol=2e-3, atol=1e-4)
    # A title with unseen n-grams: their rows read as zero, their weights still in the norm.
    ids = tf.sparse.to_dense(mixed[features.TEXT_TOKENS]).numpy()
    weights = tf.sparse.to_dense(mixed[features.TEXT_TOKEN_WEIGHTS]).numpy()
    rows = np.where(np.isin(ids, seen)[..., None], full_table[ids], 0.0)
    want = (weights[..., None] * rows).sum(1) / np.sqrt((weights ** 2).sum(1))[:, None] * preset.ngram_lr_multiplier
    got = member.bag(mixed[features.TEXT_TOKENS], mixed[features.TEXT_TOKEN_WEIGHTS]).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)
    # Products without n-grams (an empty title), alone in a batch or beside others: zeros.
    empty = tf.SparseTensor(tf.zeros([0, 2], tf.int64), tf.zeros([0], tf.int64), [3, 6])
    np.testing.assert_array_equal(member.bag(empty).numpy(), np.zeros((3, preset.token_dim)))
    some = tf.SparseTensor([[1, 0]], tf.constant([seen[0]], tf.int64), [3, 6])
    got = member.bag(some).numpy()
    np.testing.assert_allclose(got[1], full_table[seen[0]] * preset.ngram_lr_multiplier, rtol=2e-3, atol=1e-5)
    assert not got[[0, 2]].any()
    with np.testing.assert_raises(ValueError):  # kept once: the ids now name kept rows
        keep_seen_ngram_rows(model, seen)


def test_tables_of_the_seen_rows_compute_and_learn_what_the_full_tables_do():
    """A model built on the train split's n-gram ids (the Trainer's, with `compact_tables`)
    holds one row per seen id and a zero row: given the full model's weights, it decodes
    the same, one training step moves its rows as the full model's (LazyAdam, no dropout),
    its zero row stays zero, and the export's reduction only stores it in float16."""
    from trainer.optimizers import make_optimizer, members_cross_entropy

    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    preset = dataclasses.replace(get_preset("small"), members=2, ngram_init_scale=0.5, dropout=0.0,
                                 modality_dropout=0.0, ngram_dropout=0.0)
    rng = np.random.default_rng(0)
    seen = rng.choice(preset.hash_buckets, 300, replace=False)
    inputs = _titles(rng, 32, seen)
    labels = {k: tf.constant(rng.integers(0, tax.num_classes(k), 32), tf.int64) for k in range(1, tax.depth + 1)}
    inputs.update({features.label_id_feature(k): v for k, v in labels.items()})
    full, compact = build_model(tax, preset), build_model(tax, preset, seen_ids=seen)
    assert build_model(tax, dataclasses.replace(preset, compact_tables=False), seen_ids=seen).members[0].bag.kept_ids \
        is None  # without compact_tables the rows are not reduced
    for model in (full, compact):
        model.beam_search(inputs, preset.beam_width)  # builds the tables
    full_tables, compact_tables = ngram_tables(full), ngram_tables(compact)
    for f, c in zip(full_tables, compact_tables):
        kept = c.kept_ids.numpy()
        np.testing.assert_array_equal(kept, np.unique(seen % c.buckets))
        assert c.table.shape[0] == kept.size + 1 and not c.table.numpy()[-1].any()
        c.table.assign(np.concatenate([f.table.numpy()[kept], np.zeros((1, c.dim), np.float32)]))
    for f, c in zip(full.trainable_weights, compact.trainable_weights):
        if f.shape == c.shape:
            c.assign(f)
    want_ids, want_conf = full.beam_search(inputs, preset.beam_width)
    got_ids, got_conf = compact.beam_search(inputs, preset.beam_width)
    np.testing.assert_array_equal(got_ids.numpy(), want_ids.numpy())
    np.testing.assert_allclose(got_conf.numpy(), want_conf.numpy(), rtol=1e-4, atol=1e-6)

    before = [c.table.numpy() for c in compact_tables]
    for model in (full, compact):
        optimizer = make_optimizer(preset, total_steps=10)
        with tf.GradientTape() as tape:
            out = model(inputs, training=True)
            loss = sum(tf.reduce_mean(members_cross_entropy(labels[k], out[f"level_{k}"])) for k in labels)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights), model.trainable_weights))
    for f, c, start in zip(full_tables, compact_tables, before):
        kept = c.kept_ids.numpy()
        assert np.abs(c.table.numpy() - start).max() > 1e-4  # the step moved the rows
        np.testing.assert_allclose(c.table.numpy()[:-1], f.table.numpy()[kept], rtol=1e-4, atol=1e-6)
        assert not c.table.numpy()[-1].any()
    for f, c in zip(full.trainable_weights, compact.trainable_weights):
        if f.shape == c.shape:
            np.testing.assert_allclose(c.numpy(), f.numpy(), rtol=1e-4, atol=1e-6)

    trained = [c.table.numpy() for c in compact_tables]
    with np.testing.assert_raises(ValueError):  # the rows it was built on, no others
        keep_seen_ngram_rows(compact, seen[:-1])
    keep_seen_ngram_rows(compact, seen)
    for c, table in zip(ngram_tables(compact), trained):
        assert c.table.dtype == tf.float16 and not c.table.trainable
        np.testing.assert_allclose(c.table.numpy(), table, rtol=1e-3, atol=1e-4)
    np.testing.assert_array_equal(compact.beam_search(inputs, preset.beam_width)[0].numpy(),
                                  full.beam_search(inputs, preset.beam_width)[0].numpy())
    with np.testing.assert_raises(ValueError):
        keep_seen_ngram_rows(compact, seen)


def _flipkart_shaped_taxonomy() -> Taxonomy:
    """827 classes over three levels (with STOP), as the flipkart taxonomy has."""
    paths = []
    for b in range(200):  # 27 + (200 + STOP) + (598 + STOP)
        paths += [[f"a{b % 27}", f"b{b}", f"c{c}"] for c in range(3 if b < 198 else 2)]
    return Taxonomy.build(paths, max_depth=3)


def test_a_flipkart_sized_serving_model_stays_under_the_bound(tmp_path):
    """The default preset with flipkart's 827 classes, both embeddings, and a train split
    with twice the distinct n-grams flipkart's has (80,000 against about 41,000): the saved
    model (the tables and the layers; the serving signature adds the transform graph, about
    1 MB) is under the bound, and the tables hold what the sizes say."""
    tax = _flipkart_shaped_taxonomy()
    columns = sum(tax.num_classes(k) for k in range(1, tax.depth + 1))
    assert columns == 827
    preset = get_preset("default")
    model = build_model(tax, preset, embedding_features=(features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING))
    rng = np.random.default_rng(0)
    seen = rng.choice(preset.hash_buckets, 80_000, replace=False)
    inputs = {**_titles(rng, 4, seen), features.TEXT_EMBEDDING: tf.zeros([4, 512]),
              features.IMAGE_EMBEDDING: tf.zeros([4, 1280])}
    model.beam_search(inputs, preset.beam_width)
    keep_seen_ngram_rows(model, seen)
    table_bytes = sum(t.table.numpy().nbytes for t in ngram_tables(model))
    wide_rows = np.unique(seen % preset.wide_buckets).size
    expected = 2 * ((wide_rows + 1) * columns + preset.members * (seen.size + 1) * preset.token_dim)
    assert table_bytes == expected
    tf.saved_model.save(model, str(tmp_path / "model"))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(tmp_path / "model") for f in files)
    assert table_bytes < size < SERVING_BOUND_BYTES, size
