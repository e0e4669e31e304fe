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
