import numpy as np
import tensorflow as tf

from schema import features
from schema.taxonomy import Taxonomy
from trainer.preprocessing import hashed_ngrams, label_ids, ngram_title, normalize_text
from tests.test_taxonomy import PATHS


def test_label_ids_in_tf_match_the_taxonomy():
    tax = Taxonomy.build(PATHS, max_depth=3, min_count=3)
    labels = [["Apparel", "Topwear", "Tshirts"], ["Apparel", "Topwear", "Capes"], ["Footwear", "Shoes", ""],
              ["Apparel", "Bottomwear", "Skirts"],
              ["Unknown", "", ""], ["Apparel", "Loungewear", "Shorts"]]
    inputs = {features.level_feature(k): tf.constant([row[k - 1] for row in labels]) for k in (1, 2, 3)}
    out = label_ids(inputs, tax)
    got = np.stack([out[features.label_id_feature(k)].numpy() for k in (1, 2, 3)], axis=1)
    expected = [tax.label_ids([x for x in row if x]) for row in labels]
    assert got.tolist() == expected
    masks = np.stack([out[features.label_mask_feature(k)].numpy() for k in (1, 2, 3)], axis=1)
    assert masks.tolist() == [[float(i >= 0) for i in row] for row in expected]


def test_text_normalisation_keeps_any_script():
    text = normalize_text(tf.constant(["Puma Men's T-Shirt!!", "Bolso de mano NEGRO", "女士 手提包"]))
    assert [t.decode() for t in text.numpy()] == ["puma men s t shirt", "bolso de mano negro", "女士 手提包"]
    ids = hashed_ngrams(text, 1000)
    counts = tf.sparse.reduce_sum(tf.sparse.map_values(tf.ones_like, ids), axis=1).numpy()
    assert (counts > 3).all()
    assert ids.values.numpy().max() < 1000


def test_ngrams_read_the_mapped_title_where_there_is_one():
    titles = tf.constant([["Bolso negro"], ["Red Bag"]])
    assert ngram_title({features.TITLE: titles}).numpy().tolist() == [b"Bolso negro", b"Red Bag"]
    # A request without the mapped title (the serving default "") falls back to the title.
    mapped = tf.constant([["bag black"], [""]])
    assert ngram_title({features.TITLE: titles, features.TITLE_MAPPED: mapped}).numpy().tolist() == [
        b"bag black", b"Red Bag"]


def test_tfidf_weighting_in_transform(tmp_path):
    """preprocessing_fn as Transform runs it: with TF-IDF weighting an n-gram found in every
    title weighs less than one found in a single title, ids and weights share indices,
    and a title's repeated n-grams are merged into one weighted id."""
    import tensorflow_transform as tft  # noqa: F401
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from schema.taxonomy import TAXONOMY_URI_CONFIG
    from trainer.preprocessing import HASH_BUCKETS_CONFIG, NGRAM_WEIGHTING_CONFIG, preprocessing_fn

    Taxonomy.build(PATHS, max_depth=3, min_count=3).save(tmp_path)
    titles = ["red shirt", "blue shirt", "green shirt", "zanzibar shirt shirt"]
    rows = [{features.TITLE: t, features.DESCRIPTION: "", features.HAS_IMAGE: 0} for t in titles]
    spec = {features.TITLE: tf.io.FixedLenFeature([], tf.string),
            features.DESCRIPTION: tf.io.FixedLenFeature([], tf.string),
            features.HAS_IMAGE: tf.io.FixedLenFeature([], tf.int64)}
    config = {TAXONOMY_URI_CONFIG: str(tmp_path), HASH_BUCKETS_CONFIG: 2**20, NGRAM_WEIGHTING_CONFIG: "tfidf"}
    with tft_beam.Context(temp_dir=str(tmp_path / "tft"), force_tf_compat_v1=False):
        (out, _), _ = (rows, dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))) | \
            tft_beam.AnalyzeAndTransformDataset(lambda x: preprocessing_fn(x, config))
    shirt = int(hashed_ngrams(tf.constant(["shirt"]), 2**20).values.numpy()[0])
    red = int(hashed_ngrams(tf.constant(["red"]), 2**20).values.numpy()[0])
    first = dict(zip(out[0][features.TEXT_TOKENS].tolist(), out[0][features.TEXT_TOKEN_WEIGHTS].tolist()))
    assert len(out[0][features.TEXT_TOKENS]) == len(out[0][features.TEXT_TOKEN_WEIGHTS])
    assert first[red] > first[shirt] > 0
    last = out[3][features.TEXT_TOKENS].tolist()
    assert last.count(shirt) == 1, "a repeated n-gram is one id with a larger weight"
