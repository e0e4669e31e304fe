"""The image's build-step smoke test (kubeflow/image_smoke_test.py) on this checkout: it
must pass here, and each check must fail when what it guards is broken. The full run, in
a venv installed from the public registry alone, is `make image-check`."""
from __future__ import annotations

import os

import pytest

from kubeflow import image_smoke_test


def test_smoke_test_finds_every_executor_and_user_function_of_the_pipeline():
    message = image_smoke_test.check_executors_and_user_functions()
    assert "trainer.preprocessing.preprocessing_fn" in message and "trainer.run.run_fn" in message
    titles = image_smoke_test.check_artifact_types()
    assert "kubeflow.RejectedRecords" in titles and "kubeflow.CategoryTaxonomy" in titles


def test_smoke_test_fails_on_an_executor_that_does_not_import(monkeypatch):
    monkeypatch.setattr(image_smoke_test, "CLUSTER_EXECUTORS", ("kubeflow.no_such_module.Executor",))
    with pytest.raises(ModuleNotFoundError, match="kubeflow.no_such_module"):
        image_smoke_test.check_executors_and_user_functions()
    monkeypatch.setattr(image_smoke_test, "CLUSTER_EXECUTORS", ("trainer.run.run_fn",))
    with pytest.raises(RuntimeError, match="trainer.run.run_fn is not a TFX executor class"):
        image_smoke_test.check_executors_and_user_functions()


def test_smoke_test_checks_python_and_the_beam_boot_program(tmp_path, monkeypatch, capsys):
    import apache_beam

    assert image_smoke_test.check_python().startswith("Python 3.11")
    boot = tmp_path / "boot"
    boot.write_text("#!/bin/sh\n")
    with pytest.raises(RuntimeError, match="missing or not executable"):
        image_smoke_test.check_beam(str(boot), None)
    os.chmod(boot, 0o755)
    assert "boot program" in image_smoke_test.check_beam(str(boot), apache_beam.__version__)
    with pytest.raises(RuntimeError, match="the boot program is from 2.0.0"):
        image_smoke_test.check_beam(str(boot), "2.0.0")
    # the command line turns a failed check into one error line and exit code 1
    monkeypatch.setattr(image_smoke_test, "LOCK_PYTHON", (3, 99))
    assert image_smoke_test.main([]) == 1
    assert "error: image smoke test, python: RuntimeError: Python 3.11" in capsys.readouterr().err


def test_installed_check_refuses_a_project_imported_from_a_checkout(monkeypatch, capsys):
    """`--installed` (make image-check) and `--in-image` (the Dockerfile) pass only where the
    project runs from its installed distribution; these tests import it from the checkout
    (not installed, or installed editable), which the check must name."""
    from importlib import metadata

    with pytest.raises(RuntimeError, match="not installed|imported from .*, not from the installed"):
        image_smoke_test.check_installed()
    # As if the distribution were installed elsewhere: the checkout's packages are refused.
    class Elsewhere:
        version = "1.0.0"

        @staticmethod
        def locate_file(_):
            return "/usr/local/lib/python3.11/site-packages"

    monkeypatch.setattr(metadata, "distribution", lambda name: Elsewhere)
    with pytest.raises(RuntimeError, match=r"schema is imported from .*, not from the installed"):
        image_smoke_test.check_installed()
    assert image_smoke_test.main(["--installed"]) == 1
    assert "error: image smoke test, installed package: RuntimeError" in capsys.readouterr().err


def test_installed_check_passes_where_the_distribution_holds_the_imported_project(monkeypatch, tmp_path):
    """Where the distribution's files are the imported ones (here: pretend the checkout is the
    install), the check passes and reports the data files; a different expected code root,
    or a curated schema missing from the install, fails it."""
    from importlib import metadata

    from schema import catalog_spec
    from tests.conftest import ROOT

    class Checkout:
        version = "1.0.0"

        @staticmethod
        def locate_file(_):
            return str(ROOT)

    monkeypatch.setattr(metadata, "distribution", lambda name: Checkout)
    message = image_smoke_test.check_installed(str(ROOT))
    assert "catalog specs fashion, flipkart with their schemas" in message
    with pytest.raises(RuntimeError, match="compiled pipelines name paths under /usr/local"):
        image_smoke_test.check_installed("/usr/local/lib/python3.11/site-packages")
    monkeypatch.setattr(catalog_spec, "SCHEMA_DIR", tmp_path)  # an install without curated/*.pbtxt
    with pytest.raises(RuntimeError, match="its curated schema .* was not installed"):
        image_smoke_test.check_installed()
