"""The hierarchical classifier: fused encoder, one head per level, beam search over the tree.

- Encoder: a learned bag of hashed word and character n-grams, fused with the pretrained
  text and image embeddings when the examples carry them (modality dropout in training,
  so text-only and photo-only products both work).
- Head k sees the encoder output and the parent it is conditioned on: the true parent in
  training (teacher forcing), the decoded parent at inference. Its logits are masked to
  the parent's children, so P(child | parent, x) is a proper distribution over valid nodes.
- Decoding is a beam search over the tree; a path's score is the product of its level
  probabilities, and only paths of the taxonomy can come out.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import tensorflow as tf
import tf_keras as keras

from schema import features
from schema.taxonomy import Taxonomy
from trainer.presets import ModelPreset

_NEG = -1e9


class HashedBag(keras.layers.Layer):
    """Mean of learned embeddings of hashed n-gram ids (fastText-style)."""

    def __init__(self, buckets: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.buckets = buckets
        self.dim = dim

    def build(self, input_shape):
        self.table = self.add_weight(
            name="table",
            shape=(self.buckets, self.dim),
            initializer=keras.initializers.RandomUniform(-0.05, 0.05),
        )

    def call(self, ids: tf.SparseTensor) -> tf.Tensor:
        return tf.nn.safe_embedding_lookup_sparse(self.table, ids, combiner="sqrtn")


class HierarchicalClassifier(keras.Model):
    """`linear=True` gives the baseline: a linear bag-of-words model with the same heads,
    the same decoding and the same export, so the two are compared like for like."""

    def __init__(self, taxonomy: Taxonomy, preset: ModelPreset, linear: bool = False,
                 embedding_features: tuple[str, ...] = (), **kwargs):
        super().__init__(**kwargs)
        self.depth = taxonomy.depth
        self.linear = linear
        self.preset = preset
        self.embedding_features = tuple(embedding_features)
        self.num_classes = [taxonomy.num_classes(k) for k in range(1, self.depth + 1)]
        self.bag = HashedBag(preset.hash_buckets, preset.token_dim, name="ngram_bag")
        self.child_masks = [None] + [
            tf.constant(taxonomy.child_mask(k), tf.float32) for k in range(2, self.depth + 1)
        ]
        if linear:
            self.fuse = None
        else:
            self.fuse = keras.Sequential(
                [keras.layers.Dense(preset.hidden_units, activation="relu"), keras.layers.Dropout(preset.dropout)],
                name="fuse",
            )
        self.parent_embeddings = [None] + [
            keras.layers.Embedding(self.num_classes[k - 2], preset.parent_dim, name=f"parent_{k}")
            for k in range(2, self.depth + 1)
        ]
        self.head_hidden = [None] + [
            None if linear else keras.layers.Dense(preset.head_units, activation="relu", name=f"head_hidden_{k}")
            for k in range(2, self.depth + 1)
        ]
        self.heads = [keras.layers.Dense(n, name=f"head_{k}") for k, n in enumerate(self.num_classes, start=1)]

    # ---- encoder ------------------------------------------------------------------------
    def encode(self, inputs: dict, training: bool = False) -> tf.Tensor:
        text_parts = [self.bag(inputs[features.TEXT_TOKENS])]
        image_parts = []
        for name in self.embedding_features:
            emb = tf.cast(inputs[name], tf.float32)
            (image_parts if name == features.IMAGE_EMBEDDING else text_parts).append(emb)
        if training and self.preset.modality_dropout > 0 and image_parts:
            text_parts, image_parts = self._drop_modality(text_parts, image_parts)
        parts = text_parts + image_parts
        h = tf.concat(parts, axis=-1) if len(parts) > 1 else parts[0]
        return h if self.fuse is None else self.fuse(h, training=training)

    def _drop_modality(self, text_parts: list, image_parts: list) -> tuple[list, list]:
        """One draw per product with a photo: blank all of its text (title n-grams and
        sentence embedding together, as a product without a title arrives at serving), or
        blank its photo, never both. Training then sees photo-only and text-only products;
        products without a photo keep their text, which is all they have."""
        p = self.preset.modality_dropout
        has_photo = tf.cast(tf.reduce_any(tf.not_equal(image_parts[0], 0.0), axis=-1, keepdims=True), tf.float32)
        u = tf.random.uniform(tf.shape(has_photo))
        drop_text = tf.cast(u < p, tf.float32) * has_photo
        drop_image = tf.cast((u >= p) & (u < 2 * p), tf.float32)
        return [t * (1.0 - drop_text) for t in text_parts], [i * (1.0 - drop_image) for i in image_parts]

    def level_logits(self, level: int, h: tf.Tensor, parent: tf.Tensor | None) -> tf.Tensor:
        """Logits at `level` (1-based); for level >= 2, conditioned on and masked by `parent`."""
        if level == 1:
            return self.heads[0](h)
        x = tf.concat([h, self.parent_embeddings[level - 1](parent)], axis=-1)
        if self.head_hidden[level - 1] is not None:
            x = self.head_hidden[level - 1](x)
        logits = self.heads[level - 1](x)
        mask = tf.gather(self.child_masks[level - 1], parent)
        return logits + (1.0 - mask) * _NEG

    # ---- training (teacher forcing) ----------------------------------------------------
    def call(self, inputs: dict, training: bool = False) -> dict:
        h = self.encode(inputs, training=training)
        out = {}
        for k in range(1, self.depth + 1):
            parent = None
            if k > 1:
                parent = tf.maximum(tf.cast(inputs[features.label_id_feature(k - 1)], tf.int32), 0)
            out[f"level_{k}"] = self.level_logits(k, h, parent)
        return out

    # ---- inference ----------------------------------------------------------------------
    def beam_search(self, inputs: dict, beam_width: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns (class ids [N, depth], cumulative path probability [N, depth]) of the best
        path. STOP (class 0 at levels >= 2) continues as STOP with probability 1."""
        h = self.encode(inputs, training=False)
        n = tf.shape(h)[0]
        logp = tf.nn.log_softmax(self.level_logits(1, h, None))
        width = min(beam_width, self.num_classes[0])
        scores, ids = tf.math.top_k(logp, k=width)  # [N, B]
        paths = ids[:, :, None]  # [N, B, 1]
        level_scores = scores[:, :, None]
        for k in range(2, self.depth + 1):
            b = tf.shape(scores)[1]
            h_rep = tf.repeat(h, b, axis=0)  # [N*B, H]
            parent = tf.reshape(paths[:, :, -1], [-1])
            step = tf.nn.log_softmax(self.level_logits(k, h_rep, parent))  # [N*B, C]
            c = self.num_classes[k - 1]
            total = scores[:, :, None] + tf.reshape(step, [n, b, c])
            flat = tf.reshape(total, [n, -1])
            new_width = min(beam_width, c * beam_width)
            scores, flat_idx = tf.math.top_k(flat, k=tf.minimum(new_width, b * c))
            beam_idx = flat_idx // c
            class_idx = flat_idx % c
            paths = tf.concat([tf.gather(paths, beam_idx, batch_dims=1), class_idx[:, :, None]], axis=-1)
            level_scores = tf.concat(
                [tf.gather(level_scores, beam_idx, batch_dims=1), scores[:, :, None]], axis=-1
            )
        return paths[:, 0, :], tf.exp(level_scores[:, 0, :])


def class_tables(taxonomy: Taxonomy) -> list[tf.Tensor]:
    """Per level, the class index -> full path string table ("" for STOP)."""
    return [
        tf.constant([c if i > 0 or k == 1 else "" for i, c in enumerate(level.classes)], tf.string)
        for k, level in enumerate(taxonomy.levels, start=1)
    ]


def threshold_tables(taxonomy: Taxonomy, thresholds: dict | None) -> list[tf.Tensor]:
    """Per level, the class index -> minimum confidence to keep that node (0 = always)."""
    out = []
    for k, level in enumerate(taxonomy.levels, start=1):
        values = np.zeros(len(level.classes), np.float32)
        if thresholds:
            per_node = thresholds.get("nodes", {})
            default = thresholds.get("levels", {}).get(str(k), 0.0)
            for i, path in enumerate(level.classes):
                values[i] = per_node.get(path, default)
        out.append(tf.constant(values))
    return out


def decode_outputs(
    class_ids: tf.Tensor,
    confidences: tf.Tensor,
    classes: list[tf.Tensor],
    thresholds: list[tf.Tensor],
) -> dict[str, tf.Tensor]:
    """Turns beam-search ids into the serving contract, with per-node back-off.

    A level is kept while its node is not STOP and its confidence reaches the node's
    threshold; the returned path is the deepest kept node (its full path string), so a
    low-confidence leaf backs off to its parent, and a weak top level gives no path."""
    depth = len(classes)
    out: dict[str, tf.Tensor] = {}
    full_path = tf.fill(tf.shape(class_ids)[:1], "")
    full_conf = tf.zeros(tf.shape(class_ids)[:1])
    path = full_path
    conf = full_conf
    kept_depth = tf.zeros(tf.shape(class_ids)[:1], tf.int32)
    full_depth = kept_depth
    still = tf.ones(tf.shape(class_ids)[:1], tf.bool)
    for k in range(1, depth + 1):
        ids = class_ids[:, k - 1]
        name = tf.gather(classes[k - 1], ids)
        level_conf = confidences[:, k - 1]
        real = tf.not_equal(name, "")
        out[features.out_level_class(k)] = tf.where(real, name, "")
        out[features.out_level_confidence(k)] = tf.where(real, level_conf, 0.0)
        full_path = tf.where(real, name, full_path)
        full_conf = tf.where(real, level_conf, full_conf)
        full_depth = tf.where(real, k, full_depth)
        still = tf.logical_and(still, tf.logical_and(real, level_conf >= tf.gather(thresholds[k - 1], ids)))
        path = tf.where(still, name, path)
        conf = tf.where(still, level_conf, conf)
        kept_depth = tf.where(still, k, kept_depth)
    out[features.OUT_FULL_PATH] = full_path
    out[features.OUT_FULL_CONFIDENCE] = full_conf
    out[features.OUT_PATH] = path
    out[features.OUT_CONFIDENCE] = conf
    out[features.OUT_DEPTH] = kept_depth
    out["full_depth"] = full_depth
    return out
