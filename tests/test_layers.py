"""Layers point down: no project module imports one of a layer above its own.

The order, bottom first (README, "Architecture"):

    schema < evaluator < trainer < components < pipeline_definition < kubeflow < pipeline

`schema/` holds the shared contracts (feature and config keys, the taxonomy, the serving
layout, the readers and the encoders); the evaluator's metrics build on it, the trainer on
both, the components wrap them for TFX, `pipeline_definition` wires the components, the
Kubeflow runner compiles that definition and `pipeline.py` is the command line over all of
it. Tests and benchmarks stand outside the order (they may import anything) and no library
module may import them. Every import counts: at the top of a file, inside a function
(lazy), absolute or relative. The scan reads the files with `ast` and imports nothing.

Also here: nothing puts the project on `sys.path` by hand (the project is an installed
package, pyproject.toml), and the benchmarks use public names of the project only.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Iterator

from tests.conftest import ROOT

LAYERS = ("schema", "evaluator", "trainer", "components", "pipeline_definition", "kubeflow", "pipeline")
OUTSIDE = ("tests", "bench")  # may import every layer; no layer may import them
RANK = {name: rank for rank, name in enumerate(LAYERS)}


def is_test_module(tree: ast.Module) -> bool:
    """A module that defines tests (pytest collects `test_*` functions) is a test, wherever
    it lies (components keep theirs beside the executor)."""
    return any(isinstance(node, ast.FunctionDef) and node.name.startswith("test_") for node in tree.body)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in `tree`, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                yield node.lineno, ".".join(filter(None, [base, node.module]))
            else:
                yield node.lineno, node.module or ""


def upward_imports(source: str, module: str, is_package: bool = False, where: str = "<source>") -> list[str]:
    """`where:line: ...` for each import in `source` (module `module`) of a higher layer or of
    tests/bench; [] for a test module or a module outside the layers."""
    tree = ast.parse(source, filename=where)
    own = module.split(".")[0]
    if own not in RANK or is_test_module(tree):
        return []
    found = []
    for line, name in imported_modules(tree, module, is_package):
        top = name.split(".")[0]
        if top in OUTSIDE:
            found.append(f"{where}:{line}: {module} ({own}) imports {name}, which is outside the library")
        elif top in RANK and RANK[top] > RANK[own]:
            found.append(f"{where}:{line}: {module} ({own}) imports {name} ({top}, a higher layer)")
    return sorted(found, key=lambda f: int(f.split(":")[1]))


def layer_files(root: Path) -> list[Path]:
    files = []
    for name in LAYERS:
        if (root / name).is_dir():
            files += sorted((root / name).rglob("*.py"))
        elif (root / f"{name}.py").is_file():
            files.append(root / f"{name}.py")
    return files


def test_no_module_imports_a_higher_layer():
    files = layer_files(ROOT)
    assert {f.relative_to(ROOT).parts[0] for f in files} >= {"schema", "evaluator", "trainer", "components",
                                                              "kubeflow", "pipeline.py", "pipeline_definition.py"}
    problems = []
    for path in files:
        problems += upward_imports(path.read_text(encoding="utf-8"), module_name(path, ROOT),
                                   path.name == "__init__.py", str(path.relative_to(ROOT)))
    assert not problems, "imports that point up:\n" + "\n".join(problems)


def test_the_scan_flags_upward_lazy_relative_and_outside_imports():
    """The check itself: each kind of upward import in a synthetic module is found, with its
    line; downward and same-layer imports, and test modules, are not."""
    source = (
        "import os\n"
        "from schema import features\n"  # down: fine
        "from trainer import model\n"  # same layer: fine
        "def run():\n"
        "    from components.embedder import executor\n"  # up, lazily
        "    import kubeflow.settings\n"  # up
        "from . import presets\n"  # same package: fine
        "from .. import presets\n"  # relative, resolved to trainer: fine
        "from tests.fixtures.example_gen import run_catalog_example_gen\n"  # outside the library
    )
    found = upward_imports(source, "trainer.sub.mod", where="trainer/sub/mod.py")
    assert [f.split(": ", 1)[0] for f in found] == ["trainer/sub/mod.py:5", "trainer/sub/mod.py:6",
                                                     "trainer/sub/mod.py:9"]
    assert "imports components.embedder (components, a higher layer)" in found[0]
    assert "outside the library" in found[2]
    assert [name for _, name in sorted(imported_modules(ast.parse(source), "trainer.sub.mod", False))][-3:] == [
        "trainer.sub", "trainer", "tests.fixtures.example_gen"]
    assert upward_imports("from components import artifacts\n", "schema.x") != []
    assert upward_imports("from kubeflow import settings\n", "pipeline") == []  # the top imports anything
    assert upward_imports("from pipeline import main\n", "kubeflow.compiler") != []
    # A module of tests beside a component may import the test fixtures.
    assert upward_imports("from tests.fixtures import x\ndef test_it():\n    pass\n", "components.a.executor_test") == []


def _python_files() -> list[Path]:
    """The repository's own .py files (not venvs, caches or run outputs; not walked into)."""
    skip = {".venv", ".git", ".cache", "pipelines", "serving", "outputs", "build", "__pycache__"}
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        found += [Path(folder) / name for name in files if name.endswith(".py")]
    return sorted(found)


def test_nothing_puts_the_project_on_sys_path_by_hand():
    """The project is a package (pyproject.toml, installed editable by `make install`), so
    no module, test or benchmark edits `sys.path` to find it."""
    edits = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                target = next((t for t in targets if ast.unparse(t) == "sys.path"), None)
            if target is not None and ast.unparse(target) == "sys.path":
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not edits, "sys.path edits:\n" + "\n".join(edits)


def test_benchmarks_use_public_names_of_the_project():
    private = []
    for path in sorted((ROOT / "bench").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (*LAYERS, *OUTSIDE):
                private += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}"
                            for a in node.names if a.name.startswith("_")]
    assert not private, "benchmarks import private names:\n" + "\n".join(private)
