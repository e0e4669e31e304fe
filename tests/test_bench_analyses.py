"""The analyses behind BENCHMARKS.md's tables, checked on hand-made cases: what is reported as
label noise and as complementary errors ("The model and TF-IDF", Model selection), the
intervals of bench/quality.py's rows, and the issue 19 benches' votes, code-switched titles and
example edits ("What was tried for issue 19")."""
import numpy as np

from bench.model_selection import mixture_accuracies
from bench.quality import Split, same_title_elsewhere


def _split(texts, truth):
    return Split(records=[], ids=[], texts=list(texts), truth=list(truth), has_image=np.zeros(len(texts), bool),
                 text_emb=np.zeros((len(texts), 1)), image_emb=np.zeros((len(texts), 1)))


def test_same_title_elsewhere_counts_conflicting_train_labels():
    train = _split(["Blue Shirt", "blue  shirt", "Red Shoe", "Cap"], ["A > Shirts", "A > Tops", "F > Shoes", "H"])
    evals = _split(["blue shirt", "red shoe", "RED SHOE", "new thing", "cap"],
                   ["A > Shirts", "F > Sandals", "F > Shoes", "A > Shirts", "H"])
    # seen: all but "new thing"; also under another category: "blue shirt" (Tops too) and the
    # first "red shoe" (only Shoes in train, the eval says Sandals); only other: that red shoe.
    assert same_title_elsewhere(train, evals) == (4, 2, 1)


def test_mixture_weights_the_model_and_the_regression():
    beam_paths = np.array([["A", "B"], ["A", "B"]], dtype=object)
    beam_probs = np.array([[0.6, 0.4], [0.9, 0.1]])
    classes = np.array(["A", "B", "C"])
    lr_probs = np.array([[0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    truth = ["C", "A"]
    acc = mixture_accuracies(beam_paths, beam_probs, classes, lr_probs, truth, weights=(0.0, 0.5, 1.0), top=3)
    # w=0: regression alone -> C (right), B (wrong); w=1: model alone -> A (wrong), A (right);
    # w=0.5: product 0: A .35, B .25, C .40 -> C; product 1: A .55, B .40, C .05 -> A: both right.
    assert acc == {0.0: 0.5, 0.5: 1.0, 1.0: 0.5}
    # A product no model can be right about (None) counts as wrong under every weight.
    assert mixture_accuracies(beam_paths[:1], beam_probs[:1], classes, lr_probs[:1], [None], top=3)[1.0] == 0.0


def test_quality_rows_carry_the_exact_interval_of_their_leaf_accuracy():
    """bench/quality.py's rows: the interval is Clopper-Pearson's for (right, products), so
    two models a handful of products apart are shown to overlap."""
    from bench.quality import _table, leaf_interval

    assert leaf_interval({"leaf_accuracy": 0.71, "n": 100}) == "0.710 [0.611, 0.796]"
    assert leaf_interval({"leaf_accuracy": 1.0, "n": 20}).endswith("[0.832, 1.000]")
    row = {"n": 3621, "accuracy_level_1": 0.998, "leaf_accuracy": 3515 / 3621, "hierarchical_f1": 0.9852}
    line = _table({"TF-IDF": row}, 1)[2]
    assert "| 0.9707 | 0.971 [0.965, 0.976] | 3,515 |" in line


def test_knn_votes_weigh_the_nearest_photos_by_similarity():
    """bench/photo_knn.py: the leaf of the larger exp(cosine / T) mass, and its share."""
    from bench.photo_knn import knn_votes

    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    truth = ["A", "A", "B", "C", "D"]
    query = np.array([[0.95, 0.05], [0.1, 1.0]])
    leaves, shares = knn_votes(train, truth, query, k=3, temperature=0.05)
    assert list(leaves) == ["A", "B"]
    assert 0.5 < shares[0] <= 1.0 and 0.5 < shares[1] <= 1.0
    # One neighbour: its leaf, with all of the vote.
    leaves, shares = knn_votes(train, truth, query, k=1, temperature=0.05)
    assert list(leaves) == ["A", "B"] and np.allclose(shares, 1.0)
    # A hot temperature counts heads: two weak "C" neighbours outvote one close "A".
    train = np.array([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])
    leaves, _ = knn_votes(train, ["A", "C", "C"], np.array([[1.0, 0.1]]), k=3, temperature=100.0)
    assert list(leaves) == ["C"]


def test_code_switched_titles_swap_only_words_with_translations():
    """bench/code_switch.py: p=1 swaps every word that has translations, p=0 none."""
    from bench.code_switch import switched

    lexicon = {"black": ["negro", "noir"], "shoes": ["zapatos"]}
    texts = ["Nike Men Black Shoes", "Puma Cap"]
    assert switched(texts, lexicon, 0.0, seed=1) == ["nike men black shoes", "puma cap"]
    out = switched(texts, lexicon, 1.0, seed=1)
    assert out[1] == "puma cap"
    words = out[0].split()
    assert words[:2] == ["nike", "men"] and words[2] in {"negro", "noir"} and words[3] == "zapatos"


def test_text_blanked_keeps_the_embeddings_and_without_text_recomputes_them():
    """bench/quality.py: `text_blanked` (the sentence embedding kept: the model's path without
    n-grams) and `without_text` (as a product without text arrives: no sentence embedding)."""
    import tensorflow as tf

    from bench.quality import text_blanked, without_text
    from schema import features

    example = tf.train.Example()
    feats = example.features.feature
    feats[features.TITLE].bytes_list.value[:] = [b"Nike Men Black Shoes"]
    feats[features.DESCRIPTION].bytes_list.value[:] = [b"running"]
    feats[features.TITLE_MAPPED].bytes_list.value[:] = [b"nike men black shoes"]
    feats[features.TEXT_EMBEDDING].float_list.value[:] = [0.5] * 512
    feats[features.HAS_IMAGE].int64_list.value[:] = [0]
    feats[features.IMAGE].bytes_list.value[:] = [b""]
    (blanked,) = text_blanked([example])
    assert blanked.features.feature[features.TITLE].bytes_list.value == [b""]
    assert blanked.features.feature[features.DESCRIPTION].bytes_list.value == [b""]
    assert features.TITLE_MAPPED not in blanked.features.feature
    assert list(blanked.features.feature[features.TEXT_EMBEDDING].float_list.value) == [0.5] * 512
    assert example.features.feature[features.TITLE].bytes_list.value == [b"Nike Men Black Shoes"]  # a copy
    (no_text,) = without_text([example], None)
    assert not any(no_text.features.feature[features.TEXT_EMBEDDING].float_list.value)


def test_the_mapped_title_embedding_is_added_only_where_a_word_was_mapped():
    """bench/code_switch.py's variant: unit(original + mapped text's embedding) where the
    mapper replaced a word; a title whose words it kept is untouched."""
    import tensorflow as tf

    from bench.code_switch import with_mapped_title_embedding
    from schema import features

    class Encoder:
        def encode(self, texts):
            assert texts == ["black shoes de piel"]
            return np.array([[0.0, 1.0] + [0.0] * 510], np.float32)

    def example(title, mapped, description=""):
        ex = tf.train.Example()
        feats = ex.features.feature
        feats[features.TITLE].bytes_list.value.append(title.encode())
        feats[features.TITLE_MAPPED].bytes_list.value.append(mapped.encode())
        feats[features.DESCRIPTION].bytes_list.value.append(description.encode())
        feats[features.TEXT_EMBEDDING].float_list.value[:] = [1.0] + [0.0] * 511
        return ex

    out = with_mapped_title_embedding([example("Zapatos negros", "black shoes", "de piel"),
                                       example("Black Shoes!", "black shoes")], Encoder())
    first = np.array(out[0].features.feature[features.TEXT_EMBEDDING].float_list.value)
    np.testing.assert_allclose(first[:2], [2 ** -0.5, 2 ** -0.5], atol=1e-6)
    second = np.array(out[1].features.feature[features.TEXT_EMBEDDING].float_list.value)
    assert second[0] == 1.0 and not second[1:].any()
