"""The Trainer's input (`trainer.run.labelled_dataset`): for fit, every example once an
epoch in a new order each epoch, parsed once; for evaluation, one pass in file order."""
import numpy as np
import tensorflow as tf

from schema import features
from trainer.run import labelled_dataset

N, BATCH, DEPTH = 40, 8, 2  # whole batches: an epoch is N // BATCH steps


class _Accessor:
    """run_fn's data accessor as labelled_dataset uses it: tfxio's factory gives parsed
    batches (dense and sparse features) of the files in order, `num_epochs` passes."""

    calls: list = []

    @classmethod
    def tf_dataset_factory(cls, files, options, schema):
        cls.calls.append(options)
        rows = np.arange(N, dtype=np.int64)
        columns = {"row": rows[:, None].astype(np.float32)}
        for k in range(1, DEPTH + 1):
            columns[features.label_id_feature(k)] = rows * 10 + k
            columns[features.label_mask_feature(k)] = np.ones(N, np.float32)
        sparse = tf.sparse.SparseTensor(indices=[[i, 0] for i in range(N)], values=rows, dense_shape=[N, 3])
        ds = tf.data.Dataset.from_tensor_slices({**columns, "tokens": sparse}).batch(options.batch_size)
        return ds.repeat(options.num_epochs) if options.num_epochs else ds.repeat()


class _TransformOutput:
    class transformed_metadata:  # noqa: N801 - the attribute path tft's output has
        schema = None


def _rows(batches) -> list[int]:
    return [int(r) for features_, labels, _ in batches for r in features_["row"][:, 0].numpy()]


def test_fit_sees_every_example_once_an_epoch_reshuffled_and_eval_reads_in_order():
    steps = N // BATCH
    train = labelled_dataset(["f"], _Accessor, _TransformOutput, BATCH, DEPTH)
    assert _Accessor.calls[-1].num_epochs == 1 and not _Accessor.calls[-1].shuffle  # read and parsed once
    batches = list(train.take(2 * steps))
    first, second = _rows(batches[:steps]), _rows(batches[steps:])
    assert sorted(first) == list(range(N)) and sorted(second) == list(range(N))
    assert first != list(range(N)) and first != second  # shuffled, and anew each epoch
    for features_, labels, weights in batches:  # labels stay with their example
        rows = features_["row"][:, 0].numpy().astype(np.int64)
        assert np.array_equal(labels["level_2"].numpy(), rows * 10 + 2)
        assert np.array_equal(tf.sparse.to_dense(features_["tokens"]).numpy()[:, 0], rows)
        assert np.all(weights["level_1"].numpy() == 1)

    once = labelled_dataset(["f"], _Accessor, _TransformOutput, BATCH, DEPTH, once=True)
    assert _rows(once) == list(range(N))


def test_training_and_evaluation_input_is_not_autotuned():
    """Deleting an autotuned iterator waits for tf.data's tuning thread, which wakes less
    often the longer it runs: `fit` returned long after its last epoch."""
    for once in (False, True):
        ds = labelled_dataset(["f"], _Accessor, _TransformOutput, BATCH, DEPTH, once=once)
        assert ds.options().autotune.enabled is False
