"""The memory of a pipeline run in one process: fewer malloc arenas, and what a component
freed given back to the system when it ends.

LocalDagRunner runs every component in the command's own process. With glibc, each thread
that allocates (Beam's workers, TensorFlow's and ONNX Runtime's thread pools) can get its
own malloc arena, up to eight per core, and memory a component frees stays in those
arenas: the process only grows, so the Evaluator ran on top of what Transform and the
Trainer had already freed, and the run's peak was the sum of leftovers rather than the
largest component (BENCHMARKS.md, "Pipeline scale"). Two arenas, and `malloc_trim` at the
end of each component, keep the run near its largest component. Where the C library is
not glibc both are no-ops.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Optional

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


@functools.lru_cache(maxsize=1)
def _glibc() -> Optional[ctypes.CDLL]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - both exist only in glibc
        libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(count: int = 2) -> bool:
    """Caps glibc's malloc arenas at `count` for the rest of the process; call it before
    the libraries start their thread pools. True when it took effect."""
    libc = _glibc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, int(count)) == 1)


def exempt_live_objects_from_collection() -> int:
    """Moves every object alive now into the collector's permanent generation (`gc.freeze`);
    -> how many. Called once the run's modules are imported: importing TensorFlow, Beam and
    TFX leaves a great many objects that live as long as the process, and every full
    collection (`release_freed_memory` after each component, and Python's own from time to
    time) scanned them all again. Frozen objects are still freed when their reference count
    drops; only a reference cycle among them would outlive its use, and modules do not end."""
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def release_freed_memory() -> bool:
    """Drops Keras' global state (it keeps the last trained model's graph alive), collects
    the component's garbage (reference cycles hold on to its tensors), then returns the
    free pages of every arena to the system (`malloc_trim(0)`). True when glibc released
    some. Between components nothing is in flight that needs either."""
    import gc
    import sys

    keras = sys.modules.get("tf_keras")
    if keras is not None:
        keras.backend.clear_session()
    gc.collect()
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0) == 1)
