"""Feast's own CLI in the project: `feast feature-views list`, `feast apply` and
`feast materialize-incremental` read the feature_store.yaml generated from conf/<env>/feast.yml.

The real ``feast`` command runs in the project folder, as a user runs it (each call
imports Feast: a few seconds). `feast ui` is not started here: it serves the registry
through the same FeatureStore that `feast feature-views list` opens, and
tests/test_viz.py already checks the UI's pages and its 127.0.0.1 binding.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from payments_ml.feature_store.__main__ import main
from tests.conftest import PROJECT_ROOT
from tests.project import clean_env

FEAST = Path(sys.executable).with_name("feast")
VIEWS = ("customer_snapshot", "merchant_snapshot", "customer_today")
MARKER = 987_654  # a merchant_tx_count_30d no generated merchant has


def feast(cwd: Path, *args: str) -> str:
    """``feast <args>`` in ``cwd``; its output, or a failure with Feast's own message."""
    run = subprocess.run(
        [str(FEAST), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if run.returncode != 0:
        pytest.fail(f"feast {' '.join(args)}:\n{run.stdout[-2000:]}{run.stderr[-3000:]}")
    return run.stdout


def _conf_only(root: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    return root


def test_the_yaml_names_the_packed_store_by_its_class_for_feast(tmp_path):
    from feast.repo_config import load_repo_config  # noqa: PLC0415

    from payments_ml.feature_store.online_store import PackedSqliteOnlineStoreConfig  # noqa: PLC0415
    from payments_ml.feature_store.repo import generated_env  # noqa: PLC0415

    root = _conf_only(tmp_path).resolve()
    main(["yaml", "--project-path", str(root)])
    text = (root / "feature_store.yaml").read_text()
    assert text.startswith("# Generated from conf/base/feast.yml and conf/local: do not edit.")
    assert generated_env(root) == "base"
    config = load_repo_config(root, root / "feature_store.yaml")  # as the feast CLI reads it
    assert isinstance(config.online_store, PackedSqliteOnlineStoreConfig)
    assert config.online_store.path == f"{root}/data/feast/online_store.db"
    assert config.registry.path == f"{root}/data/feast/registry.db"


def test_the_cluster_yaml_holds_redis_as_feast_reads_it_for_its_owner_only(tmp_path, monkeypatch):
    from feast.repo_config import load_repo_config  # noqa: PLC0415

    root = _conf_only(tmp_path).resolve()
    monkeypatch.delenv("PAYMENTS_ML_DATA_ROOT", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(SystemExit, match="Environment variable 'REDIS_URL' not found"):
        main(["yaml", "--project-path", str(root), "--env", "cluster"])
    assert not (root / "feature_store.yaml").exists()

    monkeypatch.setenv("REDIS_URL", "redis://:s3cret@redis.internal:6380/2")
    main(["yaml", "--project-path", str(root), "--env", "cluster"])
    path = root / "feature_store.yaml"
    assert "conf/cluster/feast.yml" in path.read_text().splitlines()[0]
    assert path.stat().st_mode & 0o077 == 0  # it holds the password
    config = load_repo_config(root, path)
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "redis.internal:6380,password=s3cret,db=2"
    assert config.registry.path == f"{root}/data/feast/registry.db"


def test_feast_apply_needs_a_generated_yaml(tmp_path):
    from payments_ml.feature_store.repo import repo_objects  # noqa: PLC0415

    with pytest.raises(FileNotFoundError, match="python -m payments_ml.feature_store yaml"):
        repo_objects(tmp_path)
    (tmp_path / "feature_store.yaml").write_text("project: mine\nregistry: registry.db\n")
    with pytest.raises(ValueError, match="not generated from conf/<env>/feast.yml"):
        repo_objects(tmp_path)


@pytest.mark.slow
def test_feast_lists_the_views_where_kedro_run_applied_them(trained_project):
    """The features pipeline leaves the file; plain `feast` reads the project's registry."""
    text = (trained_project / "feature_store.yaml").read_text()
    assert "# Kedro environment: base" in text
    assert f"registry: {trained_project.resolve()}/data/feast/registry.db" in text
    listing = feast(trained_project, "feature-views", "list")
    assert {line.split()[0] for line in listing.splitlines()[1:] if line.strip()} == set(VIEWS)


@pytest.mark.slow
def test_feast_apply_and_materialize_incremental_serve_a_new_snapshot(trained_project, tmp_path):
    """In a copy of the trained project's Feast files (the shared project stays as it is):
    `feast apply` registers feature_repo.py's objects with the copy's paths, a merchant
    snapshot added to the offline source reaches the online store through
    `feast materialize-incremental`, and the scorer's read path answers with it."""
    from payments_ml.config import project_settings  # noqa: PLC0415
    from payments_ml.feature_store.backends import open_backend  # noqa: PLC0415
    from payments_ml.feature_store.store import open_store  # noqa: PLC0415

    copy = _feast_copy(trained_project, tmp_path / "copy")
    main(["yaml", "--project-path", str(copy)])
    feast(copy, "apply")
    store = open_store(project_settings(copy)["feast"])
    assert store.get_feature_view("merchant_snapshot").batch_source.path.startswith(str(copy))

    merchant, customer, day = _add_merchant_snapshot(copy / "data/04_feature/merchant_snapshots")
    end = (day + pd.Timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")
    views = ("-v", "customer_snapshot", "-v", "merchant_snapshot")  # customer_today is pushed
    feast(copy, "materialize-incremental", end, *views)

    backend = open_backend(open_store(project_settings(copy)["feast"]), timeout_s=10.0)
    try:
        online = backend.read(np.array([customer]), np.array([merchant]))
    finally:
        backend.close()
    assert online.features["merchant_tx_count_30d"] == [MARKER]
    assert online.features["tx_count_30d"][0] is not None  # what the pipeline wrote


def _feast_copy(project: Path, copy: Path) -> Path:
    """The project's configuration, Feast registry, online store and snapshot sources,
    with the repository root's feature_repo.py and .feastignore."""
    shutil.copytree(project / "conf", copy / "conf")
    for folder in ("data/feast", "data/04_feature"):
        shutil.copytree(project / folder, copy / folder)
    (copy / "logs").mkdir()  # conf/logging.yml's file handler
    for name in ("pyproject.toml", "feature_repo.py", ".feastignore"):
        shutil.copy(PROJECT_ROOT / name, copy / name)
    return copy.resolve()


def _add_merchant_snapshot(source: Path) -> tuple[int, int, pd.Timestamp]:
    """Add the next day's snapshot of the last merchant, with ``MARKER`` for a count, as
    the night after the last one would write it; returns that merchant, a customer, the day."""
    rows = pd.read_parquet(source)
    last = rows.sort_values(["snapshot_ts", "merchant_id"]).iloc[[-1]].drop(columns="run_date")
    day = last["snapshot_ts"].iloc[0] + pd.Timedelta(days=1)
    new = last.assign(snapshot_ts=day, merchant_tx_count_30d=MARKER)
    part = next(source.glob("run_date=*/*.parquet"))
    folder = source / f"run_date={(day - pd.Timedelta(days=1)).date()}"
    folder.mkdir(exist_ok=True)
    table = pa.Table.from_pandas(new, schema=pq.read_schema(part), preserve_index=False)
    pq.write_table(table, folder / "part-added.parquet")
    customers = pd.read_parquet(source.with_name("customer_snapshots"), columns=["customer_id"])
    return int(last["merchant_id"].iloc[0]), int(customers["customer_id"].iloc[0]), day
