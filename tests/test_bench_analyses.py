"""The two analyses behind BENCHMARKS.md's "The model and TF-IDF" table (Model selection): they
decide what is reported as label noise and as complementary errors, so they are checked on
hand-made cases."""
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
