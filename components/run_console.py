"""The console of `pipeline.py run`: one line per component as it starts and ends.

While a run is under `console(verbose)`, a logging handler turns TFX's own records of a
component starting, ending or being served from the cache (read through
schema/compat.py) into lines such as

    [10:02:11] Embedder ...
    [10:03:40] Embedder done in 89.2s

and shows the project's own log records (INFO and above: the Embedder's rate, the
Trainer's plan, the pusher's verdict). Third-party records below ERROR (absl INFO from
TFX, Beam and TFMA warnings) and third-party Python warnings (FutureWarning,
DeprecationWarning, ...) are dropped; `prepare_process`, called before the libraries are
imported, sets TF_CPP_MIN_LOG_LEVEL=3 so TensorFlow's C++ start-up lines (the
CUDA-factory errors) are not printed. With
`verbose=True` nothing is dropped: every handler and warning stays as the libraries set
them, and the component lines come on top.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import warnings
from typing import Callable, Iterator, Optional, TextIO

from schema import compat
from schema.config import PROJECT_ROOT

# Modules whose warnings and log records are the project's own.
PROJECT_MODULES = r"(schema|components|trainer|evaluator|kubeflow|pipeline|pipeline_definition)(\.|$)"


def silence_library_warnings() -> None:
    """Python warnings from third-party modules are ignored from now on; the project's own
    still show."""
    warnings.filterwarnings("ignore", module=rf"(?!{PROJECT_MODULES})")


def prepare_process(verbose: bool) -> None:
    """What must be set before TensorFlow and TFX are imported, since they log and warn on
    import: TensorFlow's C++ log level (3: not even the CUDA-factory errors; 0 with
    `verbose`), and the library warnings silenced unless `verbose`."""
    if "tensorflow" not in sys.modules:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" if verbose else "3"
    if not verbose:
        silence_library_warnings()


def _is_project_record(record: logging.LogRecord) -> bool:
    path = record.pathname or ""
    return path.startswith(str(PROJECT_ROOT)) and "site-packages" not in path


class ComponentLines(logging.Handler):
    """Writes a line when a component starts and when it ends (with its duration, and
    whether it ran or came from the cache); with `quiet`, also the project's own records
    and third-party errors, nothing else."""

    def __init__(self, stream: Optional[TextIO] = None, quiet: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 on_component_ran: Optional[Callable[[], object]] = None):
        super().__init__(level=logging.DEBUG)
        self._stream = stream
        self._on_component_ran = on_component_ran
        self.quiet = quiet
        self._clock = clock
        self.current: Optional[str] = None
        self._started = 0.0
        self._cached = False

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = compat.tfx_component_event(record)
            if event is not None:
                self._on_event(*event)
            elif self.quiet and (_is_project_record(record) or record.levelno >= logging.ERROR):
                self._write(record.getMessage() if record.levelno < logging.WARNING
                            else f"{record.levelname.lower()}: {record.getMessage()}")
        except Exception:  # a console line must never break the run
            self.handleError(record)

    def _on_event(self, kind: str, value) -> None:
        if kind == "start":
            self.current, self._started, self._cached = str(value), self._clock(), False
            self._write(f"{value} ...")
        elif kind == "cached":
            self._cached = True
        elif kind == "end":
            seconds = self._clock() - self._started
            self._write(f"{value} {'cached' if self._cached else 'done'} in {seconds:.1f}s")
            self.current = None
            # A component served from the cache allocated nothing to give back, and the
            # callback (a garbage collection) costs about half a second a node.
            if self._on_component_ran is not None and not self._cached:
                self._on_component_ran()

    def failed(self) -> None:
        """Says which component was running when the run stopped."""
        if self.current is not None:
            self._write(f"{self.current} failed after {self._clock() - self._started:.1f}s")
            self.current = None


@contextlib.contextmanager
def console(verbose: bool = False, stream: Optional[TextIO] = None,
            on_component_ran: Optional[Callable[[], object]] = None) -> Iterator[ComponentLines]:
    """The run's console (see the module docstring); restores logging and warnings after.
    `on_component_ran` is called after the end line of each component that ran (not cached)."""
    import absl.logging

    compat.check_tfx_component_events()
    root, absl_logger = logging.getLogger(), logging.getLogger("absl")
    saved = (list(root.handlers), root.level, absl_logger.level, absl.logging.get_verbosity())
    lines = ComponentLines(stream, quiet=not verbose, on_component_ran=on_component_ran)
    # Loggers with a handler of their own (TensorFlow's "INFO:tensorflow:..."): while quiet,
    # their records go through the root's handler, the console's, like every other.
    own = [] if verbose else [(logger, list(logger.handlers), logger.propagate)
                              for logger in list(logging.root.manager.loggerDict.values())
                              if isinstance(logger, logging.Logger) and logger.handlers]
    with warnings.catch_warnings():
        if not verbose:
            silence_library_warnings()
            for handler in list(root.handlers):
                root.removeHandler(handler)
            for logger, handlers, _ in own:
                for handler in handlers:
                    logger.removeHandler(handler)
                logger.propagate = True
        root.addHandler(lines)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        absl.logging.set_verbosity(absl.logging.INFO)  # TFX's component records are INFO
        try:
            yield lines
        except BaseException:
            lines.failed()
            raise
        finally:
            root.removeHandler(lines)
            for handler in saved[0]:
                if handler not in root.handlers:
                    root.addHandler(handler)
            root.setLevel(saved[1])
            for logger, handlers, propagate in own:
                for handler in handlers:
                    if handler not in logger.handlers:
                        logger.addHandler(handler)
                logger.propagate = propagate
            absl_logger.setLevel(saved[2])
            absl.logging.set_verbosity(saved[3])


class RateLog:
    """Logs how many rows a step has done and its rate since the meter was made, at most
    every `every_s` seconds (and on `flush`), e.g. `Embedder: 1,280 rows, 84 rows/s`."""

    def __init__(self, what: str, every_s: float = 10.0, log: Optional[Callable[[str], None]] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.what = what
        self.every_s = every_s
        self._log = log or logging.getLogger(__name__).info
        self._clock = clock
        self.rows = 0
        self._start = self._last_logged = clock()
        self._rows_logged = 0
        self._lock = threading.Lock()

    def add(self, rows: int) -> None:
        with self._lock:
            self.rows += rows
            now = self._clock()
            if now - self._last_logged >= self.every_s:
                self._emit(now)

    def flush(self) -> None:
        with self._lock:
            if self.rows != self._rows_logged:
                self._emit(self._clock())

    def _emit(self, now: float) -> None:
        rate = self.rows / max(now - self._start, 1e-9)
        self._log(f"{self.what}: {self.rows:,} rows, {rate:,.0f} rows/s")
        self._last_logged, self._rows_logged = now, self.rows


_meters: dict[str, RateLog] = {}
_meters_lock = threading.Lock()


def rate_log(what: str, restart: bool = False) -> RateLog:
    """The process's one RateLog for `what`, so that the DoFn instances of a step (one per
    split) count together; `restart=True` at the step's start begins a new count."""
    with _meters_lock:
        if restart or what not in _meters:
            _meters[what] = RateLog(what)
        return _meters[what]
