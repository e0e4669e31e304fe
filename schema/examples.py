"""tf.train.Example in and out: a cleaned Product becomes one, and its features are read back.

`categorize` builds its requests with the same function the ExampleGen uses, so a
product is encoded the same way when the model learns from it and when it is asked.
`first_bytes` and `first_int` read a feature's first value without adding the feature
to an example that lacks it; `iter_serialized` reads a split of an Examples artifact.
"""
from __future__ import annotations

import os
from typing import Iterator, Optional

import tensorflow as tf

from schema import features
from schema.catalog_reader import Product
from schema.catalog_spec import CatalogSpec


def _bytes(value: bytes | str) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def product_to_example(
    product: Product, spec: CatalogSpec, image_bytes: Optional[bytes]
) -> tf.train.Example:
    """Every feature is always present (empty string / 0 when absent), so the schema can
    require them all and a missing column shows up as an anomaly, not a silent default."""
    feats = {
        features.ID: _bytes(product.id),
        features.TITLE: _bytes(product.title),
        features.DESCRIPTION: _bytes(product.description),
        features.IMAGE: _bytes(image_bytes or b""),
        features.HAS_IMAGE: _int(1 if image_bytes else 0),
        features.CATEGORY_PATH: _bytes(product.category_path),
    }
    for level in range(1, spec.max_depth + 1):
        name = product.levels[level - 1] if level <= len(product.levels) else ""
        feats[features.level_feature(level)] = _bytes(name)
    for attr in spec.attribute_columns:
        feats[attr] = _bytes(product.attributes.get(attr, ""))
    return tf.train.Example(features=tf.train.Features(feature=feats))


def first_bytes(example: tf.train.Example, name: str) -> bytes:
    """The first value of bytes feature `name`, b"" when it is absent or empty."""
    feats = example.features.feature
    values = feats[name].bytes_list.value if name in feats else ()
    return values[0] if values else b""


def first_int(example: tf.train.Example, name: str) -> int:
    """The first value of int64 feature `name`, 0 when it is absent or empty."""
    feats = example.features.feature
    values = feats[name].int64_list.value if name in feats else ()
    return int(values[0]) if values else 0


def split_files(split_uri: str) -> list[str]:
    """The gzipped TFRecord files of one split folder (`<examples>/Split-<name>`), sorted."""
    files = sorted(tf.io.gfile.glob(os.path.join(split_uri, "*.gz")))
    if not files:
        raise FileNotFoundError(f"no *.gz TFRecord files in {split_uri}")
    return files


def iter_serialized(split_uri: str, batch_size: int = 256) -> Iterator[list[bytes]]:
    """Serialized tf.Examples of a split, in a fixed order, in batches."""
    dataset = tf.data.TFRecordDataset(split_files(split_uri), compression_type="GZIP").batch(batch_size)
    for batch in dataset.as_numpy_iterator():
        yield list(batch)
