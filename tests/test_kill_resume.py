"""Kill and resume (issue #7): a run killed (SIGKILL, whole process group) while the Trainer
runs is started again on the same pipeline root; it completes and pushes a model, the
upstream artifacts (ingest, Transform) come from the cache, and only the Trainer runs again."""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pipeline
from components.run_status import list_runs
from schema.mlmd import open_store
from tests.conftest import ROOT, shared_catalog

pytestmark = pytest.mark.e2e

MAX_ROWS = 1500
START_TIMEOUT_S = 150  # until the Trainer starts
RUN_TIMEOUT_S = 240  # the resumed run, to the end


def _argv(catalog: Path, root: Path, serving: Path) -> list[str]:
    argv = [sys.executable, str(ROOT / "pipeline.py"), "run", "--catalog", str(catalog), "--spec", "fashion",
            "--pipeline-root", str(root), "--serving-dir", str(serving), "--max-rows", str(MAX_ROWS),
            "--preset", "small"]
    parser = argparse.ArgumentParser()
    pipeline._add_run_args(parser)
    if "--no-embeddings" in parser._option_string_actions:  # pretrained encoders: not what is tested here
        argv.append("--no-embeddings")
    return argv


def _folders(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_killed_run_resumes_from_the_cache(tmp_path, demo_catalog):
    catalog = shared_catalog("fashion") or demo_catalog
    root, serving, log = tmp_path / "root", tmp_path / "serving", tmp_path / "first_run.log"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}
    argv = _argv(catalog, root, serving)

    with open(log, "wb") as out:
        first = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not (root / "TaxonomyTrainer").exists():
                assert first.poll() is None, f"the first run ended before the Trainer started:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"the Trainer did not start in {START_TIMEOUT_S}s"
                time.sleep(0.5)
            time.sleep(2)  # inside the Trainer
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert _folders(serving / "fashion") == []  # killed before anything was pushed

    resumed = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "pushed: True" in resumed.stdout
    assert "eval products outside the taxonomy: " in resumed.stdout
    assert len(_folders(serving / "fashion")) == 1

    # Upstream artifacts were reused: one artifact folder each, from the first run.
    assert len(_folders(root / "CatalogExampleGen" / "examples")) == 1
    assert len(_folders(root / "TaxonomyTransform" / "transform_graph")) == 1
    # The Trainer ran again: the killed attempt's folder and the new one.
    assert len(_folders(root / "TaxonomyTrainer" / "model")) == 2

    killed, rerun = list_runs(open_store(str(root / "metadata.sqlite")), "categorize-fashion")
    assert "TaxonomyTrainer" in killed["running"] and killed["pushed"] is False
    for node in ("CatalogExampleGen", "TaxonomyGen", "TaxonomyTransform"):
        assert node in killed["executed"] and node in rerun["cached"], node
    assert "TaxonomyTrainer" in rerun["executed"] and rerun["pushed"] and not rerun["running"]

    # The console a person reads: a line as each component starts and ends (with its
    # duration, cached or run), and none of the libraries' noise.
    first_log = log.read_text(errors="replace")
    assert "CatalogExampleGen ...\n" in first_log and re.search(r"\] CatalogExampleGen done in \d+\.\ds\n", first_log)
    assert re.search(r"\] CatalogExampleGen cached in \d+\.\ds\n", resumed.stdout)
    assert re.search(r"\] TaxonomyTrainer done in \d+\.\ds\n", resumed.stdout)
    for noise in ("FutureWarning", "Unable to register", "INFO:absl", "WARNING:absl", "Resolved inputs"):
        assert noise not in first_log + resumed.stdout + resumed.stderr, noise

    # `pipeline.py status` shows the same: the killed run with its Trainer left running.
    status = subprocess.run([sys.executable, str(ROOT / "pipeline.py"), "status", "--pipeline-root", str(root),
                             "--spec", "fashion"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert "2 run(s) of categorize-fashion" in status.stdout
    assert "1 running; blessed: not evaluated; pushed: no" in status.stdout
    assert f"blessed: yes; pushed: version {rerun['pushed_version']} -> " in status.stdout
