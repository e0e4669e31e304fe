"""tf.train.Examples read back: the one set of getters every stage uses.

`first_bytes` and `first_int` read a feature's first value without adding the feature
to an example that lacks it; `split_files` and `iter_serialized` read a split of an
Examples artifact. (Writing one from a Product is `schema/product_example.py`; the two
are apart so a reader of examples does not depend on the catalog parser, and its
components' cache keys do not change when the parser does.)
"""
from __future__ import annotations

import os
from typing import Iterator

import tensorflow as tf


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
