"""components/process_memory.py: glibc gives memory freed in other threads' arenas back to
the system when asked, which is what `pipeline.py run` does after each component."""
from __future__ import annotations

import ctypes
import threading

import pytest

from components import process_memory


def _resident_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 // 1024


@pytest.mark.skipif(process_memory._glibc() is None, reason="glibc only")
def test_memory_a_thread_freed_goes_back_to_the_system_on_release():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    pointers = []

    def allocate():  # in a thread of its own, as a Beam or TensorFlow worker: its own arena
        for _ in range(60_000):
            p = libc.malloc(2048)
            ctypes.memset(p, 1, 2048)
            pointers.append(p)
        for p in pointers[:-1]:  # all but the last: the arena cannot shrink from its top
            libc.free(p)

    thread = threading.Thread(target=allocate)
    thread.start()
    thread.join()
    before = _resident_kib()
    assert process_memory.release_freed_memory()
    after = _resident_kib()
    libc.free(pointers[-1])
    assert before - after > 60_000  # most of the ~120 MB freed, until now still resident


def test_limit_arenas_takes_effect_on_glibc():
    assert process_memory.limit_arenas(8) == (process_memory._glibc() is not None)


def test_objects_alive_at_the_start_are_left_out_of_collections_and_new_garbage_still_goes():
    import gc
    import weakref

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    old = cycle()  # garbage already at the start: collected before the freeze
    try:
        frozen = process_memory.exempt_live_objects_from_collection()
        assert old() is None
        assert frozen == gc.get_freeze_count() > 0
        new = cycle()  # garbage made afterwards, as a component's reference cycles
        assert new() is not None
        process_memory.release_freed_memory()
        assert new() is None
    finally:
        gc.unfreeze()
