"""The embedding encoders (schema/encoders/): offline loading, shapes, and
that the embeddings carry meaning (languages of one product together, photos of one
article type together)."""
from __future__ import annotations

import csv
import io
import socket

import numpy as np
import pytest
from PIL import Image

from schema import encoders
from tests.conftest import shared_catalog


def _cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _png(mode, color, size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def _encoded(mode, fmt, color) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (50, 70), color).save(buf, format=fmt)
    return buf.getvalue()


def test_encoders_load_offline_with_documented_shapes(no_network):
    text = encoders.TextEncoder()  # fresh instances: their models load under the patch
    emb = text.encode(["Blue denim jacket", "Chaqueta vaquera azul", ""])
    assert emb.shape == (3, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)

    image = encoders.ImageEncoder()
    images = [
        _encoded("RGB", "JPEG", (200, 10, 10)),
        _encoded("L", "JPEG", 90),  # grayscale
        _encoded("CMYK", "JPEG", (0, 50, 100, 0)),
        _encoded("P", "GIF", 7),  # palette
        _png("RGBA", (0, 0, 255, 120)),  # alpha
        _png("LA", (30, 200)),
        _encoded("RGB", "WEBP", (20, 200, 20)),
        b"",  # no photo
        b"\x89PNG broken",  # undecodable
    ]
    emb, ok = image.encode(images)
    assert emb.shape == (9, 1280) and emb.dtype == np.float32
    assert ok.tolist() == [True] * 7 + [False, False]
    assert np.all(emb[~ok] == 0) and np.all(np.abs(emb[ok]).sum(axis=1) > 0)
    assert np.isfinite(emb).all()


def test_image_encoder_holds_one_network_batch_of_pixels_and_keeps_rows_in_place():
    """A call decodes and runs `batch_size` photos at a time (categorize's row batches are
    thousands of rows, several in flight), and every row still gets its own photo's
    features, with gaps (no photo, undecodable) between them."""
    colors = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (200, 200, 10), (10, 200, 200)]
    photos = [_encoded("RGB", "JPEG", c) for c in colors]
    images = [photos[0], b"", photos[1], b"\x89PNG broken", photos[2], photos[3], b"", photos[4]]

    class Recording(encoders.ImageEncoder):
        largest = 0

        def embed_pixels(self, pixels):
            Recording.largest = max(Recording.largest, len(pixels))
            return super().embed_pixels(pixels)

    encoder = Recording(batch_size=2, threads=1)
    emb, ok = encoder.encode(images)
    assert Recording.largest == 2 and encoder.num_encoded == 5
    assert ok.tolist() == [True, False, True, False, True, True, False, True]
    alone = np.concatenate([encoder.embed_pixels(encoders.decode_image(p)[None]) for p in photos])
    np.testing.assert_allclose(emb[ok], alone, rtol=1e-4, atol=1e-5)  # each photo on its own
    assert np.all(emb[~ok] == 0)


def test_a_product_without_text_gets_a_zero_text_embedding(tmp_path):
    """Like a missing photo: no title means no text signal, which is what the model's
    modality dropout trains for, not the encoder's vector for an empty string."""
    cache = encoders.open_cache(str(tmp_path))
    emb = encoders.embed_texts(["Blue denim jacket", "", "   ", "Blue denim jacket"], cache)
    assert emb.shape == (4, 512)
    assert np.all(emb[1:3] == 0)
    assert np.linalg.norm(emb[0]) > 0.5 and np.array_equal(emb[0], emb[3])
    again = encoders.embed_texts(["", "Blue denim jacket"], cache)  # second call: from the cache
    assert np.all(again[0] == 0) and np.array_equal(again[1], emb[0])

def test_embedding_features_hold_exactly_the_embeddings():
    """`set_float_feature` writes the floats through their serialized form; the result must
    be the same Feature, to the byte, as the one protobuf builds from the values."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for values in (rng.standard_normal(512).astype(np.float32), np.zeros(1280, np.float32),
                   np.array([1e-30, -0.0, 3.4e38, np.nan], np.float32), np.zeros(0, np.float32)):
        built = tf.train.Feature(float_list=tf.train.FloatList(value=values.tolist()))
        feature = tf.train.Feature(int64_list=tf.train.Int64List(value=[7]))  # replaced, not merged
        encoders.set_float_feature(feature, values)
        assert feature.SerializeToString() == built.SerializeToString()
        np.testing.assert_array_equal(np.array(feature.float_list.value, np.float32), values)
    # float64 input is stored as float32, as the FloatList would
    feature = tf.train.Feature()
    encoders.set_float_feature(feature, np.array([0.1, 2.5]))
    assert feature.float_list.value == tf.train.FloatList(value=[0.1, 2.5]).value


_FALLBACK_PAIRS = [  # (English, Spanish, German) titles of the same product
    ("Men Navy Blue Cotton Shirt", "Camisa de algodón azul marino para hombre", "Herren Baumwollhemd in Marineblau"),
    ("Women Silver Analog Watch", "Reloj analógico plateado para mujer", "Damen Analoguhr in Silber"),
    ("Black Leather Handbag", "Bolso de mano de cuero negro", "Schwarze Lederhandtasche"),
    ("White Running Shoes", "Zapatillas de correr blancas", "Weiße Laufschuhe"),
    ("Red Floral Summer Dress", "Vestido de verano rojo con flores", "Rotes Sommerkleid mit Blumen"),
    ("Brown Leather Belt", "Cinturón de cuero marrón", "Brauner Ledergürtel"),
    ("Pink Lipstick", "Pintalabios rosa", "Rosa Lippenstift"),
    ("Kids Yellow T-shirt", "Camiseta amarilla para niños", "Gelbes Kinder-T-Shirt"),
]


def _language_triples() -> list[tuple[str, str, str, str]]:
    """(English, other language, lang, articleType) of one product, from the shared catalogs."""
    fashion, multi = shared_catalog("fashion"), shared_catalog("multilingual")
    if fashion is None or multi is None:
        return []
    with open(fashion / "products.csv", encoding="utf-8") as handle:
        english = {r["id"]: r for r in csv.DictReader(handle)}
    out = []
    with open(multi / "products.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            base = row["id"].rsplit("-", 1)[0]
            if base in english:
                out.append((english[base]["productDisplayName"], row["productDisplayName"], row["lang"],
                            row["articleType"]))
    return out


def test_same_product_in_two_languages_is_closer_than_another_product():
    triples = _language_triples()
    if len(triples) < 20:
        triples = [(en, es, "es", str(k)) for k, (en, es, _de) in enumerate(_FALLBACK_PAIRS)]
        triples += [(en, de, "de", str(k)) for k, (en, _es, de) in enumerate(_FALLBACK_PAIRS)]
    enc = encoders.get_text_encoder()
    en = enc.encode([t[0] for t in triples])
    other = enc.encode([t[1] for t in triples])
    wins, total = 0, 0
    for i, (_en, _o, lang, article) in enumerate(triples):
        # another product in the same language, of a different article type
        j = next((j for k in range(1, len(triples))
                  for j in [(i + k) % len(triples)]
                  if triples[j][2] == lang and triples[j][3] != article), None)
        if j is None:
            continue
        total += 1
        wins += _cos(en[i], other[i]) > _cos(en[i], other[j])
    assert total >= 10
    assert wins / total >= 0.8, f"{wins}/{total}"


def _photos_by_article(per_type: int = 6) -> dict[tuple[str, str], list[bytes]]:
    fashion = shared_catalog("fashion")
    if fashion is None:
        return {}
    wanted = {"Tshirts", "Watches", "Casual Shoes", "Handbags"}
    out: dict[tuple[str, str], list[bytes]] = {}
    with open(fashion / "products.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = (row["masterCategory"], row["articleType"])
            if row["articleType"] not in wanted or not row["image"] or len(out.get(key, [])) >= per_type:
                continue
            path = fashion / row["image"]
            if path.exists():
                out.setdefault(key, []).append(path.read_bytes())
            if len(out) == len(wanted) and all(len(v) >= per_type for v in out.values()):
                break
    return out


def test_photos_of_one_article_type_are_closer_than_across_master_categories():
    photos = _photos_by_article()
    if len(photos) < 3 or min(len(v) for v in photos.values()) < 3:
        pytest.skip("../shared/datasets/fashion images not available")
    keys = list(photos)
    flat = [(k, data) for k in keys for data in photos[k]]
    emb, ok = encoders.get_image_encoder().encode([data for _k, data in flat])
    assert ok.all()
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = emb @ emb.T
    same, different = [], []
    for i, (ki, _) in enumerate(flat):
        for j, (kj, _) in enumerate(flat):
            if i < j:
                if ki == kj:
                    same.append(sims[i, j])
                elif ki[0] != kj[0]:
                    different.append(sims[i, j])
    assert np.mean(same) > np.mean(different) + 0.05, (np.mean(same), np.mean(different))


def test_embedded_requests_parse_as_the_embedded_examples():
    """`categorize`'s requests (the example's bytes + a second `features` field) read, in
    protobuf and in TensorFlow's parser the serving signature uses, as `embed_examples`'
    copies: text only, a usable photo, an undecodable photo (has_image set back to 0)."""
    import tensorflow as tf

    def example(title: str, image: bytes, has_image: int):
        ex = tf.train.Example()
        feats = ex.features.feature
        feats["title"].bytes_list.value.append(title.encode())
        feats["image"].bytes_list.value.append(image)
        feats["has_image"].int64_list.value.append(has_image)
        return ex

    examples = [example("Blue denim jacket", b"", 0),
                example("Red shirt", _encoded("RGB", "JPEG", (200, 10, 10)), 1),
                example("Broken photo watch", b"\x89PNG broken", 1),
                example("", b"", 0)]
    built = encoders.embed_examples(examples)
    requests = encoders.embedded_requests(examples)
    assert [tf.train.Example.FromString(r) for r in requests] == built
    spec = {"title": tf.io.FixedLenFeature([], tf.string),
            "has_image": tf.io.FixedLenFeature([], tf.int64),
            "text_embedding": tf.io.FixedLenFeature([encoders.TEXT_DIM], tf.float32),
            "image_embedding": tf.io.FixedLenFeature([encoders.IMAGE_DIM], tf.float32)}
    ours = tf.io.parse_example(tf.constant(requests), spec)
    theirs = tf.io.parse_example(tf.constant([b.SerializeToString() for b in built]), spec)
    for name in spec:
        np.testing.assert_array_equal(ours[name].numpy(), theirs[name].numpy())
    assert ours["has_image"].numpy().tolist() == [0, 1, 0, 0]
    assert np.abs(ours["image_embedding"].numpy()[1]).sum() > 0 and np.abs(ours["text_embedding"].numpy()[0]).sum() > 0
    assert encoders.embedded_requests([]) == []
    # With a word mapper (a model trained with one), the requests carry the mapped title too.
    from schema.encoders.word_mapper import WordMapper

    mapper = WordMapper.fit(["blue denim jacket", "red shirt", "watch"], threshold=0.0)
    with_mapper = encoders.embedded_requests(examples, mapper=mapper)
    assert [tf.train.Example.FromString(r) for r in with_mapper] == encoders.embed_examples(examples, mapper=mapper)
    mapped = [tf.train.Example.FromString(r).features.feature["title_mapped"].bytes_list.value[0].decode()
              for r in with_mapper]
    assert mapped[0] == "blue denim jacket" and all(w in mapper.vocabulary for w in mapped[2].split())
