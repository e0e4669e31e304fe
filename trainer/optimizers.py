"""The optimizer and compile step shared by the Trainer and the model-selection harness.

Keras 2's Adam treats a sparse gradient (the n-gram tables' rows in a batch) by decaying
the moments of *every* row and moving every row each step: with the 2^18 x 64 n-gram
table and the wide part's 2^16 x classes table, that dense pass over tens of millions of
weights is most of a training step on CPU. `LazyAdam` updates only the rows in the batch
(as TF-Addons' LazyAdam and the TF1 embedding optimizers did), which is the usual choice
for large embedding tables: a rare n-gram keeps its moments between the batches that
contain it instead of having them decayed away, and a step costs what the batch touches.
It reaches Adam's moment slots through schema/compat.py (checked against tf_keras 2.16).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf
import tf_keras as keras

from schema import compat
from trainer.presets import ModelPreset


class LazyAdam(keras.optimizers.Adam):
    """Adam; for an `IndexedSlices` gradient only the rows it names are updated."""

    def __init__(self, *args, **kwargs):
        compat.check_adam_moments()  # once here: update_step runs inside the traced step
        super().__init__(*args, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        # Indices are unique here: the base optimizer deduplicates sparse gradients
        # (after any cross-replica aggregation) before calling update_step.
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = (tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step))
                 / (1 - tf.pow(beta_1, step)))
        m, v = compat.adam_moments(self, variable)
        rows = gradient.indices
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * gradient.values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(gradient.values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


def make_optimizer(preset: ModelPreset, total_steps: int) -> keras.optimizers.Optimizer:
    """Adam (lazy on sparse gradients unless the preset says otherwise) under a cosine decay
    to 5% of the preset's rate over the whole run."""
    lr = keras.optimizers.schedules.CosineDecay(preset.learning_rate, decay_steps=max(1, total_steps), alpha=0.05)
    return LazyAdam(lr) if preset.lazy_sparse_updates else keras.optimizers.Adam(lr)


def members_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-product sparse cross-entropy from logits [N, C], or its mean over the members of
    an ensemble's stacked logits [N, members, C] (each member learns on its own)."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    if logits.shape.rank == 3:
        labels = tf.repeat(labels[:, None], tf.shape(logits)[1], axis=1)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits), axis=1)
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)


def mean_probability_accuracy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Whether the class with the highest (members' mean) probability is the label."""
    probs = tf.nn.softmax(logits)
    if logits.shape.rank == 3:
        probs = tf.reduce_mean(probs, axis=1)
    labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
    return tf.cast(tf.equal(tf.argmax(probs, axis=-1), labels), tf.float32)


def compile_model(model: keras.Model, preset: ModelPreset, depth: int, total_steps: int,
                  metrics: bool = True) -> None:
    """One cross-entropy per level (labels are class ids; levels below a product's depth
    carry weight 0), with per-level accuracy when `metrics`. Works for one classifier and
    for an ensemble's stacked outputs."""
    levels = [f"level_{k}" for k in range(1, depth + 1)]
    model.compile(
        optimizer=make_optimizer(preset, total_steps),
        loss={name: members_cross_entropy for name in levels},
        weighted_metrics={name: [keras.metrics.MeanMetricWrapper(mean_probability_accuracy, name="acc")]
                          for name in levels} if metrics else None,
    )
