import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer.optimizers import LazyAdam


def _train(optimizer, rows_per_step: list[list[int]]) -> np.ndarray:
    """A 10 x 2 table trained by `optimizer` to zero on the given rows, one step per list
    (rows may repeat within a step, as an n-gram does within a batch)."""
    table = tf.Variable(np.arange(20, dtype=np.float32).reshape(10, 2))
    for rows in rows_per_step:
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.gather(table, rows)))
        optimizer.apply_gradients(zip(tape.gradient(loss, [table]), [table]))
    return table.numpy()


def test_lazy_adam_is_adam_when_every_row_is_in_every_batch():
    steps = [list(range(10)) + [3, 3]] * 5
    lazy = _train(LazyAdam(0.1), steps)
    dense = _train(keras.optimizers.Adam(0.1), steps)
    np.testing.assert_allclose(lazy, dense, atol=1e-5)
    assert not np.allclose(lazy, np.arange(20).reshape(10, 2))  # it did train


def test_lazy_adam_leaves_rows_outside_the_batch_alone():
    steps = [[1, 3, 3]] * 3 + [[5]]
    lazy = _train(LazyAdam(0.1), steps)
    dense = _train(keras.optimizers.Adam(0.1), steps)
    untouched = [0, 2, 4, 6, 7, 8, 9]
    np.testing.assert_array_equal(lazy[untouched], np.arange(20, dtype=np.float32).reshape(10, 2)[untouched])
    # Dense Adam keeps moving rows 1 and 3 on step 4 from their decayed momentum; lazy does not.
    np.testing.assert_allclose(lazy[[1, 3]], _train(LazyAdam(0.1), steps[:3])[[1, 3]])
    assert (np.abs(dense[[1, 3]] - lazy[[1, 3]]) > 1e-3).all()
    assert (lazy[5] < np.array([10.0, 11.0])).all()
