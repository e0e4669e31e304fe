"""Unseen categories at evaluation (issue #7): eval products whose category path is not wholly
a node of the taxonomy (built from the train split) are counted for the run summary."""
import os

import tensorflow as tf

from components.run_summary import outside_taxonomy
from schema import features
from schema.taxonomy import Taxonomy


def _example(path: str) -> bytes:
    feature = {features.CATEGORY_PATH: tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.encode()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_eval_products_outside_the_taxonomy_are_counted(tmp_path):
    train = [["Apparel", "Topwear", "Tshirts"]] * 5 + [["Apparel", "Topwear", "Shirts"]] * 5 + [["Rare", "X"]]
    taxonomy = Taxonomy.build(train, max_depth=3, min_count=2)
    taxonomy.save(tmp_path)
    assert taxonomy.unplaced == 1  # the train side: a top level too rare to keep
    split = tmp_path / "examples" / "Split-eval"
    split.mkdir(parents=True)
    eval_paths = ["Apparel > Topwear > Tshirts", "Apparel > Topwear", "Apparel > Topwear > Kurtas",
                  "Apparel > Bottomwear > Jeans", "Rare > X", "Footwear > Shoes", "Apparel > Topwear > Shirts"]
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as writer:
        for path in eval_paths:
            writer.write(_example(path))
    counts = outside_taxonomy(str(tmp_path / "examples"), str(tmp_path))
    assert counts == {"eval_rows": 7, "unseen_top_level": 2, "placed_higher": 2}
    assert outside_taxonomy(str(tmp_path / "examples"), str(tmp_path), split="train")["eval_rows"] == 0
