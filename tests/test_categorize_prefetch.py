"""`categorize` prepares the next batch on a background thread while the model scores the
current one; these check that this changes nothing a caller can see: order, errors, and
a consumer that stops early."""
import threading
import time

import pytest

from trainer.inference_client import prefetched


def test_items_arrive_in_order_and_all_of_them():
    assert list(prefetched(iter(range(100)), depth=2)) == list(range(100))
    assert list(prefetched(iter([]))) == []


def test_the_producer_runs_ahead_of_the_consumer():
    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i

    stream = prefetched(items(), depth=2)
    assert next(stream) == 0
    deadline = time.time() + 5
    while len(produced) < 4 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # room to overrun, if it could
    # Item 0 taken, 1 and 2 queued (depth 2), 3 made and waiting for room: no further.
    assert produced == [0, 1, 2, 3]
    assert list(stream) == [1, 2, 3, 4]


def test_a_producer_error_is_raised_in_the_consumer_after_the_items_before_it():
    def items():
        yield "a"
        yield "b"
        raise ValueError("row 7: broken")

    got = []
    with pytest.raises(ValueError, match="row 7: broken"):
        for item in prefetched(items()):
            got.append(item)
    assert got == ["a", "b"]


def _prefetch_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "categorize-prefetch"]


def test_a_consumer_that_stops_early_stops_the_producer_before_returning():
    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    stream = prefetched(endless(), depth=1)
    assert next(stream) == 0
    stream.close()  # what a `for` loop left by an exception does
    assert _prefetch_threads() == [] and closed == [True]  # joined, and the source closed


def test_a_producer_that_fails_with_the_queue_full_does_not_hang_the_consumer():
    """The producer's error has nowhere to go while the queue is full; a consumer that
    leaves then must not wait for it forever."""
    release = threading.Event()

    def items():
        yield "a"
        yield "b"
        yield "c"
        release.wait(5)
        raise RuntimeError("after the queue filled up")

    stream = prefetched(items(), depth=2)
    assert next(stream) == "a"
    time.sleep(0.2)  # "b" and "c" fill the queue
    release.set()  # the producer raises and waits for room
    time.sleep(0.2)
    started = time.time()
    stream.close()
    assert time.time() - started < 3 and _prefetch_threads() == []
