"""`categorize` prepares batches on background threads while the model scores the current
one: `prefetched` runs the preparing ahead of the serving call and `mapped_in_order` reads
and embeds two batches at once (one's Python work runs while the other's encoder graphs
hold no GIL). These check that neither changes what a caller sees: every item, in order,
errors where they belong, and nothing left running when the caller stops."""
import threading
import time

import pytest

from trainer.inference_client import mapped_in_order, prefetched


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


def _counting_until_closed(closed: list):
    """0, 1, 2, ... for ever; `closed` gets True when the generator is closed."""
    try:
        i = 0
        while True:
            yield i
            i += 1
    finally:
        closed.append(True)


def test_a_consumer_that_stops_early_stops_the_producer_before_returning():
    closed = []
    stream = prefetched(_counting_until_closed(closed), depth=1)
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


def _prepare_threads() -> list:
    return [t for t in threading.enumerate() if t.name.startswith("categorize-prepare")]


def test_every_result_arrives_in_the_items_order():
    def slow_for_even(i):
        time.sleep(0.01 if i % 2 == 0 else 0)  # later items finish first
        return i * i

    assert list(mapped_in_order(slow_for_even, iter(range(40)), workers=2)) == [
        i * i for i in range(40)]
    assert list(mapped_in_order(slow_for_even, iter([]), workers=2)) == []
    assert _prepare_threads() == []


def test_two_items_are_worked_on_at_once():
    both_running = threading.Barrier(2, timeout=5)  # broken if the works run one by one

    def work(i):
        both_running.wait()
        return i

    assert list(mapped_in_order(work, iter([0, 1]), workers=2)) == [0, 1]


def test_at_most_workers_items_are_taken_ahead_of_the_caller():
    taken = []

    def items():
        for i in range(10):
            taken.append(i)
            yield i

    stream = mapped_in_order(lambda i: i, items(), workers=2)
    assert next(stream) == 0
    assert taken == [0, 1, 2]  # the one given, and two being worked on
    assert list(stream) == list(range(1, 10))


def test_an_error_in_work_is_raised_after_the_results_before_it():
    def work(i):
        if i == 3:
            raise ValueError("row 3: broken")
        time.sleep(0.01)
        return i

    got = []
    with pytest.raises(ValueError, match="row 3: broken"):
        for result in mapped_in_order(work, iter(range(10)), workers=2):
            got.append(result)
    assert got == [0, 1, 2]
    assert _prepare_threads() == []


def test_a_caller_that_stops_early_waits_for_running_work_and_closes_the_source():
    closed, finished = [], []

    def work(i):
        time.sleep(0.05)
        finished.append(i)
        return i

    stream = mapped_in_order(work, _counting_until_closed(closed), workers=2)
    assert next(stream) == 0
    stream.close()  # what a `for` loop left by an exception does
    assert _prepare_threads() == [] and closed == [True]
    count = len(finished)
    time.sleep(0.2)
    assert len(finished) == count  # nothing still running after close() returned
