import numpy as np
import tensorflow as tf

from schema import features
from schema.taxonomy import Taxonomy
from trainer.preprocessing import hashed_ngrams, label_ids, normalize_text
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
