"""The shape of the code, as docs/architecture.md ("Module map") describes it.

Layers, lowest first; a package imports only from lower layers (and from itself): the
parameters' schemas, configuration and contracts, shared feature and dataset code, the
stage libraries, the applications (scorer, replay, hooks), then the Kedro wiring.
Pipelines talk through the catalog, never by importing one another. Functions fit on a screen. No
module reaches for another's private names; Feast's private helpers are used in one
place only, the Redis backend, so a Feast upgrade touches that file alone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "payments_ml"
LAYERS = [
    {"parameters"},
    {"config", "contracts", "structured_logging", "mlflow_plugins", "mlflow_hook"},
    {"features", "datasets", "labels"},
    {"data_gen", "ingest", "training", "monitoring", "feature_store"},
    {"serving", "stream", "hooks", "logging_hooks", "orchestration", "report"},
    {"pipelines", "pipeline_registry", "settings", "__main__"},
]
MAX_FUNCTION_LINES = 60
FEAST_INTERNALS = {"feature_store/backends/redis.py"}  # the one file allowed Feast's _names


def _modules(folder: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(folder.rglob("*.py")):
        yield path.relative_to(folder).as_posix(), ast.parse(path.read_text(), str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of every absolute import (relative imports are not used here)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _layer(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def _package(relative: str) -> str:
    return relative.removesuffix(".py").split("/")[0]


def layer_violations() -> list[str]:
    found = []
    for relative, tree in _modules(PACKAGE):
        own = _package(relative)
        for module, _ in _imports(tree):
            parts = module.split(".")
            if parts[0] != "payments_ml" or len(parts) < 2 or parts[1] == own:
                continue
            if _layer(parts[1]) >= _layer(own):
                found.append(f"{relative} imports {module}")
    return found


def imports_between_pipelines() -> list[str]:
    found = []
    for relative, tree in _modules(PACKAGE / "pipelines"):
        own = relative.split("/")[0]
        for module, _ in _imports(tree):
            parts = module.split(".")
            if parts[:2] == ["payments_ml", "pipelines"] and len(parts) > 2 and parts[2] != own:
                found.append(f"pipelines/{relative} imports {module}")
    return found


def private_imports(folder: Path, allowed: set[str] = frozenset()) -> list[str]:
    found = []
    for relative, tree in _modules(folder):
        for module, names in _imports(tree):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            ours = module.startswith("payments_ml")
            if private and (ours or relative not in allowed):
                found.append(f"{relative}: from {module} import {', '.join(private)}")
    return found


def long_functions() -> list[str]:
    found = []
    for relative, tree in _modules(PACKAGE):
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found.append(f"{relative}:{node.name} ({lines} lines)")
    return found


def test_every_package_has_a_layer():
    packages = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.name != "__init__.py"}
    packages -= {"__pycache__", "dashboard.html"}
    assert packages == set().union(*LAYERS)


@pytest.mark.parametrize(
    "check",
    [
        layer_violations,
        imports_between_pipelines,
        long_functions,
        lambda: private_imports(PACKAGE, FEAST_INTERNALS),
        lambda: private_imports(PROJECT_ROOT / "benchmarks"),
    ],
    ids=["layers", "between_pipelines", "long_functions", "private_src", "private_benchmarks"],
)
def test_the_code_keeps_its_shape(check):
    assert check() == []


def test_the_checks_see_what_they_forbid(tmp_path):
    """Each rule finds a planted violation (a check that sees nothing proves nothing)."""
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(
        "from payments_ml.hooks import _helper\nfrom feast.x import _internal\n"
        f"def long():\n{body}\n"
    )
    assert len(private_imports(tmp_path)) == 2
    assert private_imports(tmp_path, {"m.py"}) == ["m.py: from payments_ml.hooks import _helper"]
    tree = ast.parse((tmp_path / "m.py").read_text())
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert function.end_lineno - function.lineno + 1 > MAX_FUNCTION_LINES
    assert _layer("features") < _layer("feature_store") < _layer("serving") < _layer("pipelines")
