"""The cross-lingual word mapper (schema/encoders/word_mapper.py): unseen title words map to
their nearest training words, known words and codes stay, the threshold decides, its words
are the n-gram features' words, and the fitted mapper travels in the serving model's assets
to `categorize`, whose requests carry the mapped title."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tensorflow as tf

from schema import encoders, features
from schema.encoders import word_mapper
from schema.encoders.word_mapper import WordMapper, words

TRAIN_TITLES = ["Puma Men Black Running Shoes", "Nike Women White Cotton Shirt", "Titan Silver Watch CH2694",
                "Red Leather Handbag"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    cache = encoders.EmbeddingCache(tmp_path_factory.mktemp("cache"))
    return WordMapper.fit(TRAIN_TITLES, cache), cache


def test_unseen_words_map_to_their_training_counterparts_and_known_words_stay(fitted):
    mapper, cache = fitted
    assert set(mapper.vocabulary) == {w for t in TRAIN_TITLES for w in words(t)} - {"ch2694"}
    assert mapper.known_only == ["ch2694"]  # a code: known, never a target
    spanish, english = mapper.map_texts(["Camisa blanca Nike para mujer", "Titan Watch CH2694 Puma"], cache)
    assert spanish.split()[:3] == ["shirt", "white", "nike"]
    assert english == "titan watch ch2694 puma"  # every word known: the title's own words


def test_codes_and_numbers_are_never_mapped(fitted):
    mapper, cache = fitted
    assert mapper.unseen("Zapatos XJ900 2011 negro") == ["zapatos", "negro"]
    assert mapper.map_texts(["XJ900 2011"], cache) == ["xj900 2011"]


class _Encoder:
    """A text encoder with chosen vectors: the threshold's effect, exactly."""

    encoder_id = "test-vectors"

    def __init__(self, vectors: dict[str, list[float]]):
        self.vectors = vectors

    def encode(self, texts):
        out = np.zeros((len(texts), encoders.TEXT_DIM), np.float32)
        for i, t in enumerate(texts):
            out[i, :2] = self.vectors[t]
        return out


def test_the_threshold_decides_which_unseen_words_are_replaced():
    # cos(near, shoe) = 0.8, cos(far, shoe) = 0.6, cos(far, bag) = 0
    encoder = _Encoder({"shoe": [1, 0], "bag": [0, 1], "near": [0.8, 0.6], "far": [0.6, -0.8]})
    for threshold, expected in ((0.5, "shoe shoe bag"), (0.7, "shoe far bag"), (0.9, "near far bag")):
        mapper = WordMapper.fit(["shoe", "bag"], None, threshold=threshold, encoder=encoder)
        assert mapper.map_texts(["near far bag"], None, encoder) == [expected], threshold
    nearest = mapper.nearest(["near", "far"], None, encoder)
    assert nearest["near"][0] == "shoe" and nearest["near"][1] == pytest.approx(0.8, abs=1e-6)


def test_the_mapper_survives_its_file(fitted, tmp_path):
    mapper, cache = fitted
    path = str(tmp_path / "artifact" / word_mapper.FILE_NAME)  # a folder not made yet, as on Vertex AI
    mapper.save(path)
    loaded = WordMapper.load(path)
    assert loaded.vocabulary == mapper.vocabulary and loaded.known_only == mapper.known_only
    assert loaded.threshold == mapper.threshold
    assert np.allclose(loaded.vectors, mapper.vectors, atol=1e-3)  # float16 on disk
    titles = ["Camisa blanca Nike", "Sac à main rouge", "Titan CH2694"]
    assert loaded.map_texts(titles, cache) == mapper.map_texts(titles, cache)
    assert word_mapper.load_optional(str(tmp_path / "absent.npz")) is None


@pytest.mark.parametrize("text", ["Café-Crème  T_shirt (2-pack)!", "Straßenschuhe ÜBER größe", "夏季 连衣裙 XL",
                                  "naïve  l'été", "Sac à main"])
def test_its_words_are_the_ngram_features_words(text):
    from trainer.preprocessing import normalize_text

    normalized = normalize_text(tf.constant([text])).numpy()[0].decode()
    assert words(text) == normalized.split()


# ---- the serving asset, through `categorize` ---------------------------------------------

class _EchoModel(tf.Module):
    """A serving model that answers with the title its n-grams would read: the request's
    `title_mapped` where it is there, else "raw: <title>"."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples):
        parsed = tf.io.parse_example(examples, {
            features.TITLE: tf.io.FixedLenFeature([1], tf.string, default_value=[""]),
            features.TITLE_MAPPED: tf.io.FixedLenFeature([1], tf.string, default_value=[""]),
        })
        title, mapped = parsed[features.TITLE][:, 0], parsed[features.TITLE_MAPPED][:, 0]
        path = tf.where(tf.equal(mapped, ""), tf.strings.join(["raw: ", title]), mapped)
        n = tf.shape(path)[0]
        return {features.OUT_PATH: path, features.OUT_FULL_PATH: path,
                features.OUT_CONFIDENCE: tf.fill([n], 0.9), features.OUT_FULL_CONFIDENCE: tf.fill([n], 0.9),
                features.OUT_DEPTH: tf.fill([n], 1), "full_depth": tf.fill([n], 1)}


def test_categorize_maps_titles_with_the_mapper_in_the_models_assets(fitted, tmp_path):
    from trainer import inference_client

    mapper, _ = fitted
    model_dir = tmp_path / "model"
    module = _EchoModel()
    tf.saved_model.save(module, str(model_dir), signatures={"serving_default": module.serve})
    (model_dir / "assets.extra").mkdir()
    (model_dir / "assets.extra" / "model_info.json").write_text(json.dumps({"embedding_features": []}))
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "products.csv").write_text(
        "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image\n"
        "1,Women,Apparel,Topwear,Shirts,White,Summer,2012,Casual,Camisa blanca Nike,\n"
        "2,Men,Footwear,Shoes,Sports Shoes,Black,Summer,2012,Sports,Puma Black Running Shoes,\n", encoding="utf-8")

    def paths(name):
        out = tmp_path / f"{name}.csv"
        inference_client.categorize(str(catalog), "fashion", str(out), model_dir=str(model_dir),
                                    embedding_cache_dir=str(tmp_path / "cache"))
        with open(out, newline="", encoding="utf-8") as handle:
            return [row["category_path"] for row in csv.DictReader(handle)]

    # A model without the asset gets the titles as they are.
    assert paths("without") == ["raw: Camisa blanca Nike", "raw: Puma Black Running Shoes"]
    mapper.save(str(model_dir / "assets.extra" / word_mapper.FILE_NAME))
    assert paths("with") == ["shirt white nike", "puma black running shoes"]


def test_a_damaged_mapper_asset_is_a_clear_error(tmp_path):
    from trainer.inference_client import CategorizeError, Categorizer

    model_dir = tmp_path / "model"
    module = _EchoModel()
    tf.saved_model.save(module, str(model_dir), signatures={"serving_default": module.serve})
    (model_dir / "assets.extra").mkdir()
    (model_dir / "assets.extra" / word_mapper.FILE_NAME).write_bytes(b"not a mapper")
    with pytest.raises(CategorizeError, match="word mapper .* is unreadable"):
        Categorizer(model_dir)
