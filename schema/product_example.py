"""A cleaned catalog Product as a tf.train.Example: the one encoding of a product.

`categorize` builds its requests with the same function the ExampleGen uses, so a
product is encoded the same way when the model learns from it and when it is asked.
"""
from __future__ import annotations

from typing import Optional

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
