"""`categorize` prepares two batches at once (one's Python work runs while the other's
encoder graphs hold no GIL); these check `mapped_in_order` keeps what a caller sees
unchanged: every result, in order, errors where they belong, and nothing left running
when the caller stops."""
import threading
import time

import pytest

from trainer.inference_client import mapped_in_order


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

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    def work(i):
        time.sleep(0.05)
        finished.append(i)
        return i

    stream = mapped_in_order(work, endless(), workers=2)
    assert next(stream) == 0
    stream.close()  # what a `for` loop left by an exception does
    assert _prepare_threads() == [] and closed == [True]
    count = len(finished)
    time.sleep(0.2)
    assert len(finished) == count  # nothing still running after close() returned
