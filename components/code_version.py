"""A fingerprint of the project code each component runs, for TFX's cache key.

TFX keys its cache on a component's exec properties and inputs, and an executor is named
by its class path, not its code: after an edit to the metrics, the report, the pusher or
the model, a re-run on an unchanged catalog served the old outputs. So every component
gets a `code_version` exec property: a SHA-256 over the project's source files its code
imports, directly or not. Which files is derived, not listed by hand: from the modules
the node names (its executor and driver classes, and dotted names in its exec properties
such as `trainer.run.run_fn` or the metrics module in the Evaluator's eval_config), the
`import` statements of the project's own files are followed (read with `ast`, nothing is
imported). A module that reads files of its own at run time (the review report's Jinja2
template) names them in a module-level `CODE_DATA` tuple of paths relative to it, and they
count as its source. Third-party code is pinned by the lock (and on a cluster by the image
digest).
"""
from __future__ import annotations

import ast
import hashlib
import re
from pathlib import Path
from typing import Iterable, Optional

from schema.config import PROJECT_ROOT

PROJECT_PACKAGES = ("schema", "components", "trainer", "evaluator", "kubeflow")
CODE_VERSION_KEY = "code_version"
DATA_NAME = "CODE_DATA"  # module-level tuple of data files (relative paths) the module runs on

_DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\b")


def _module_file(name: str, root: Path) -> Optional[Path]:
    if name.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> Iterable[str]:
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # a submodule, or just a name


def _data_files(path: Path) -> list[Path]:
    """The files a module names in its module-level `CODE_DATA` tuple (string literals)."""
    out = []
    for node in ast.parse(path.read_bytes(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == DATA_NAME for t in node.targets):
            out += [path.parent / item for item in ast.literal_eval(node.value)]
    return out


def module_sources(modules: Iterable[str], root: Path = PROJECT_ROOT) -> list[Path]:
    """The project's source files that `modules` are or import, transitively, and the data
    files they name in `CODE_DATA`."""
    found: dict[Path, str] = {}
    stack = list(modules)
    while stack:
        name = stack.pop()
        parts = name.split(".")
        stack += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages run their __init__
        path = _module_file(name, root)
        if path is None or path in found:
            continue
        found[path] = name
        stack.extend(_imports(path, name))
        for data in _data_files(path):
            if not data.is_file():
                raise FileNotFoundError(f"{path} names {data} in {DATA_NAME}, and it does not exist")
            found[data] = name
    return sorted(found)


def code_version(modules: Iterable[str], root: Path = PROJECT_ROOT) -> str:
    """SHA-256 over the sources `modules` import, their relative names included, so a
    renamed file counts as a change."""
    digest = hashlib.sha256()
    for source in module_sources(modules, root):
        digest.update(source.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(source.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def node_modules(node) -> set[str]:
    """The project modules a pipeline node runs: executor, driver, and the modules its exec
    properties name (user functions, the Evaluator's metrics module)."""
    names = set()
    executor_class = getattr(getattr(node, "executor_spec", None), "executor_class", None)
    for cls in (executor_class, getattr(node, "driver_class", None)):
        if cls is not None:
            names.add(cls.__module__)
    for value in node.exec_properties.values():
        if isinstance(value, str):
            for dotted in _DOTTED.findall(value):
                names.update({dotted, dotted.rpartition(".")[0]})
    return {n for n in names if _module_file(n, PROJECT_ROOT) is not None}


def stamp_code_versions(nodes: Iterable, root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Sets `code_version` on every node that runs project code; returns {node id: version}."""
    stamped = {}
    for node in nodes:
        modules = node_modules(node)
        if modules:
            node.exec_properties[CODE_VERSION_KEY] = stamped[node.id] = code_version(modules, root)
    return stamped
