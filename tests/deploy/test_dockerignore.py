"""The build context that .dockerignore leaves: what the image needs, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.deploy.dockerignore import DockerIgnore, parse

# What the Dockerfile copies, and only that, may be in the context.
ALLOWED_PREFIXES = ("src/", "conf/base/", "conf/cluster/")
ALLOWED_FILES = {"pyproject.toml", "README.md", "conf/logging.yml", "Dockerfile", ".dockerignore"}


def _ignore(text: str) -> DockerIgnore:
    return DockerIgnore(parse(text))


# Examples of Docker's documentation of .dockerignore, with the answers it gives.
@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp", True),
        ("*/temp*", "temporary.txt", False),
        ("*/temp*", "a/b/temporary.txt", False),
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("*/*/temp*", "somedir/temporary.txt", False),
        ("temp?", "tempa", True),
        ("temp?", "tempab", False),
        ("temp?", "sub/tempa", False),
        ("**/*.go", "main.go", True),
        ("**/*.go", "a/b/c/main.go", True),
        ("**/*.go", "a/b/main.golang", False),
        ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
        ("*.md\n!README*.md\nREADME-secret.md", "README.md", False),
        ("*.md\n!README*.md\nREADME-secret.md", "CHANGES.md", True),
        ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
        # leading slash, directory matches cover their contents, comments and blanks
        ("/data", "data/01_raw/x.parquet", True),
        ("# data\n\ndata/", "data/x", True),
        ("# data", "data/x", False),
        ("data", "src/data/x", False),
        ("**/__pycache__", "src/pkg/__pycache__/m.cpython-311.pyc", True),
        ("*\n!src", "src/pkg/module.py", False),
        ("*\n!src\n**/*.pyc", "src/pkg/module.pyc", True),
        ("*\n!conf/base", "conf/local/credentials.yml", True),
        ("*\n!conf/base", "conf/base/catalog.yml", False),
        ("file[0-9].txt", "file7.txt", True),
        ("file[^0-9].txt", "file7.txt", False),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
    ],
)
def test_matcher_follows_docker_semantics(rules: str, path: str, excluded: bool):
    assert _ignore(rules).excluded(path) is excluded


def test_matcher_rejects_a_bare_exception():
    with pytest.raises(ValueError, match="illegal exclusion pattern"):
        parse("!\n")


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore.from_file(PROJECT_ROOT / ".dockerignore")


def _plant(root: Path, paths: list[str]) -> None:
    for rel in paths:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")


JUNK = [
    "data/01_raw/transactions/event_date=2025-06-01/part-0.parquet",
    "data/feast/registry.db",
    "data/mlflow/mlflow.db",
    "data/.gitkeep",
    "mlflow.db",
    "mlruns/0/meta.yaml",
    "mlartifacts/1/model.pkl",
    ".venv/bin/python",
    ".git/HEAD",
    ".coverage",
    ".coverage.xml",
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/0.8/cache",
    ".telemetry",
    ".viz/stats.json",
    ".env",
    "build/index.html",
    "dist/payments_ml-0.1.0.whl",
    "notebooks/explore.ipynb",
    "notebooks/.ipynb_checkpoints/explore-checkpoint.ipynb",
    "benchmarks/bench_features.py",
    "tests/conftest.py",
    "docs/runbook.md",
    "deploy/serve_config.yaml",
    "conf/local/credentials.yml",
    "conf/local/cluster.env",
    "src/payments_ml/__pycache__/hooks.cpython-311.pyc",
    "src/payments_ml/stale.pyc",
    "src/payments_ml.egg-info/PKG-INFO",
    "conf/base/.ipynb_checkpoints/catalog-checkpoint.yml",
]
NEEDED = [
    "pyproject.toml",
    "README.md",
    "src/payments_ml/__init__.py",
    "src/payments_ml/serving/app.py",
    "conf/base/catalog.yml",
    "conf/cluster/ray.yml",
    "conf/logging.yml",
]


def test_context_keeps_what_the_image_needs_and_drops_the_rest(ignore, tmp_path):
    _plant(tmp_path, JUNK + NEEDED)
    context = set(ignore.context(tmp_path))
    assert context == set(NEEDED)


def test_context_of_this_checkout_holds_only_the_project_files(ignore):
    """The real work tree (with its data/, .venv, caches) sends only allowed files."""
    context = list(ignore.context(PROJECT_ROOT))
    assert "pyproject.toml" in context
    assert any(path.startswith("src/payments_ml/") for path in context)
    strays = [
        path
        for path in context
        if not path.startswith(ALLOWED_PREFIXES) and path not in ALLOWED_FILES
    ]
    assert strays == []
    assert not [path for path in context if "__pycache__" in path or path.endswith(".pyc")]


def test_every_copy_source_of_the_dockerfile_is_in_the_context(ignore):
    """A COPY whose source the context lacks fails the build: check each one."""
    sources = []
    for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] != ["COPY"] or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    assert {"pyproject.toml", "README.md", "src", "conf/base", "conf/cluster"} <= set(sources)
    for source in sources:
        target = PROJECT_ROOT / source
        assert target.exists(), f"Dockerfile copies {source}, which is not in the repository"
        files = (
            [source]
            if target.is_file()
            else [p.relative_to(PROJECT_ROOT).as_posix() for p in target.rglob("*") if p.is_file()]
        )
        kept = [f for f in files if not ignore.excluded(f)]
        assert kept, f".dockerignore leaves {source} out of the build context, but COPY needs it"
