"""The console of `pipeline.py run` (components/run_console.py): a line per component as
it starts and ends, the project's own messages, third-party noise dropped unless
--verbose. The whole CLI is checked in tests/test_kill_resume.py (a subprocess) and the
Embedder's rate line in tests/test_pipeline_e2e.py."""
from __future__ import annotations

import io
import logging
import warnings

from components import run_console
from components.run_console import ComponentLines, RateLog, console

SITE_PACKAGES = "/venv/lib/python3.11/site-packages/apache_beam/runners/x.py"


def _record(name: str, level: int, msg: str, args: tuple = (), pathname: str = SITE_PACKAGES) -> logging.LogRecord:
    return logging.LogRecord(name, level, pathname, 1, msg, args, None)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_component_lines_say_start_end_duration_and_cache():
    out, clock = io.StringIO(), Clock()
    lines = ComponentLines(out, clock=clock)
    for msg, args, advance in [("Component %s is running.", ("CatalogExampleGen",), 12.5),
                               ("Component %s is finished.", ("CatalogExampleGen",), 0),
                               ("Component %s is running.", ("StatisticsGen",), 0.25),
                               ("A cached execution %d is used.", (7,), 0),
                               ("Component %s is finished.", ("StatisticsGen",), 0),
                               ("Component %s is running.", ("TaxonomyTrainer",), 3.0)]:
        lines.handle(_record("absl", logging.INFO, msg, args))
        clock.now += advance
    lines.failed()
    text = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert text == ["CatalogExampleGen ...", "CatalogExampleGen done in 12.5s", "StatisticsGen ...",
                    "StatisticsGen cached in 0.2s", "TaxonomyTrainer ...", "TaxonomyTrainer failed after 3.0s"]


def test_quiet_console_keeps_the_project_s_messages_and_drops_library_noise():
    out, tf_out = io.StringIO(), io.StringIO()
    tf_logger = logging.getLogger("tensorflow")
    tf_handler = logging.StreamHandler(tf_out)  # as TensorFlow adds one when it is imported first
    tf_logger.addHandler(tf_handler)
    tf_logger.setLevel(logging.INFO)
    project_file = str(run_console.PROJECT_ROOT / "trainer" / "run.py")
    with console(verbose=False, stream=out):
        root = logging.getLogger()
        root.handle(_record("absl", logging.INFO, "Component %s is running.", ("Embedder",)))
        root.handle(_record("absl", logging.INFO, "Resolved inputs: %s", ("spam",)))
        root.handle(_record("apache_beam.runners", logging.WARNING, "Make sure that locally built Python SDK"))
        root.handle(_record("absl", logging.INFO, "training model on %d examples", (640,), pathname=project_file))
        root.handle(_record("tensorflow", logging.ERROR, "a library error"))
        logging.getLogger("components.run_console").info("Embedder: 1,280 rows, 84 rows/s")
        logging.getLogger("tensorflow").info("struct2tensor is not available.")  # TF's own handler: not used
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn_explicit("Python 3.11 support ends", FutureWarning, "google/api_core/x.py", 1,
                                   module="google.api_core.x")
            warnings.warn_explicit("a project warning", RuntimeWarning, "schema/config.py", 1, module="schema.config")
        root.handle(_record("absl", logging.INFO, "Component %s is finished.", ("Embedder",)))
    text = out.getvalue()
    assert "Embedder ..." in text and "Embedder done in" in text
    assert "training model on 640 examples" in text and "Embedder: 1,280 rows, 84 rows/s" in text
    assert "error: a library error" in text
    assert "Resolved inputs" not in text and "locally built" not in text
    assert [str(w.message) for w in caught] == ["a project warning"]
    assert tf_out.getvalue() == "" and "struct2tensor" not in text
    assert run_console.ComponentLines not in {type(h) for h in logging.getLogger().handlers}  # restored
    assert tf_handler in tf_logger.handlers
    tf_logger.removeHandler(tf_handler)


def test_verbose_console_keeps_every_handler_and_adds_the_component_lines():
    out, everything = io.StringIO(), io.StringIO()
    library_handler = logging.StreamHandler(everything)
    logging.getLogger().addHandler(library_handler)
    try:
        with console(verbose=True, stream=out):
            logging.getLogger().handle(_record("absl", logging.INFO, "Component %s is running.", ("Evaluator",)))
            logging.getLogger().handle(_record("apache_beam.runners", logging.WARNING, "beam says"))
        assert "Evaluator ..." in out.getvalue() and "beam says" not in out.getvalue()
        assert "beam says" in everything.getvalue() and "Component Evaluator is running." in everything.getvalue()
    finally:
        logging.getLogger().removeHandler(library_handler)


def test_rate_log_reports_rows_and_rate_at_most_every_interval():
    said, clock = [], Clock()
    rate = RateLog("Embedder", every_s=10.0, log=said.append, clock=clock)
    for _ in range(30):  # 64 rows every second
        clock.now += 1.0
        rate.add(64)
        if clock.now == 125.0:
            rate.flush()  # the end of a bundle: said now
    rate.flush()  # nothing new since the last line: nothing said
    assert said == ["Embedder: 640 rows, 64 rows/s", "Embedder: 1,280 rows, 64 rows/s",
                    "Embedder: 1,600 rows, 64 rows/s", "Embedder: 1,920 rows, 64 rows/s"]


def test_the_dofns_of_one_step_share_one_count():
    first = run_console.rate_log("Step", restart=True)
    assert run_console.rate_log("Step") is first  # another split's DoFn, same process
    assert run_console.rate_log("Step", restart=True) is not first  # the next run of the step


def test_the_end_callback_runs_once_per_component_that_ran_and_never_breaks_the_run():
    """`pipeline.py run` gives freed memory back to the system there (process_memory); a
    component served from the cache freed nothing, so the callback is skipped."""
    calls = []
    out = io.StringIO()
    lines = ComponentLines(out, on_component_ran=lambda: calls.append(len(out.getvalue().splitlines())))
    for msg, args in [("Component %s is running.", ("Embedder",)), ("A cached execution %d is used.", (3,)),
                      ("Component %s is finished.", ("Embedder",)), ("Component %s is running.", ("Trainer",)),
                      ("Component %s is finished.", ("Trainer",)), ("Component %s is running.", ("Evaluator",)),
                      ("Component %s is finished.", ("Evaluator",))]:
        lines.handle(_record("absl", logging.INFO, msg, args))
    assert calls == [4, 6]  # after the end line of each component that ran, at no other event

    def broken():
        raise RuntimeError("no memory to give back")

    failing = ComponentLines(io.StringIO(), on_component_ran=broken)
    failing.handleError = lambda record: None  # what logging does with a handler's error: report, go on
    failing.handle(_record("absl", logging.INFO, "Component %s is running.", ("Embedder",)))
    failing.handle(_record("absl", logging.INFO, "Component %s is finished.", ("Embedder",)))
    assert failing.current is None
