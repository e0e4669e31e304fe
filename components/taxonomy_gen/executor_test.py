"""TaxonomyGen executor: counts the train split only and writes taxonomy.json."""
import os

import tensorflow as tf
from tfx.types import standard_artifacts

from components.artifacts import CategoryTaxonomy
from components.taxonomy_gen.executor import Executor
from schema.taxonomy import Taxonomy
from tests.fixtures.example_gen import write_split


def _example(*levels):
    feats = {f"level_{k}": tf.train.Feature(bytes_list=tf.train.BytesList(value=[levels[k - 1].encode()]))
             for k in range(1, len(levels) + 1)}
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def test_builds_from_train_split_only(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train", "eval"]'
    write_split(tmp_path / "examples" / "Split-train", [_example("A", "B", "C")] * 4 + [_example("A", "D", "")] * 3)
    write_split(tmp_path / "examples" / "Split-eval", [_example("Z", "Y", "X")] * 10)
    taxonomy = CategoryTaxonomy()
    taxonomy.uri = str(tmp_path / "taxonomy")
    os.makedirs(taxonomy.uri)
    Executor().Do({"examples": [examples]}, {"taxonomy": [taxonomy]}, {"max_depth": 3, "min_count": 2})
    tax = Taxonomy.load(taxonomy.uri)
    assert tax.levels[0].classes == ["A"]
    assert "A > D" in tax.levels[1].classes and tax.levels[1].counts[tax.index(2)["A > D"]] == 3
    assert taxonomy.get_int_custom_property("depth") == 3
