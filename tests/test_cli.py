"""The real `kedro run` CLI in a scratch copy of the project: the hook, the catalog, --params."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

SMALL = (
    "data_gen.n_customers=300,data_gen.n_merchants=80,data_gen.n_regions=5,"
    "data_gen.n_days=4,data_gen.start_date=2025-06-09,data_gen.corruption_rate=0.01"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return scratch_project(tmp_path_factory.mktemp("project"))


def scratch_project(root: Path) -> Path:
    """A copy of the project's code and configuration, without data or conf/local."""
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    shutil.copytree(
        PROJECT_ROOT / "src",
        root / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    return root


def kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "KEDRO_DISABLE_TELEMETRY": "true",
        "RAY_USAGE_STATS_ENABLED": "0",
        "COLUMNS": "200",
    }
    env.pop("RAY_ADDRESS", None)
    kedro_bin = Path(sys.executable).with_name("kedro")
    return subprocess.run(
        [str(kedro_bin), "run", *args],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _partition(project: Path, day: str) -> pd.DataFrame:
    path = project / "data/01_raw/transactions" / f"event_date={day}"
    return pd.read_parquet(path).sort_values("transaction_id", ignore_index=True)


def test_data_gen_runs_then_one_day_is_regenerated_identically(project):
    full = kedro(project, "--pipelines", "data_gen", "--params", SMALL)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    log = full.stdout + full.stderr
    assert "Ray started locally" in log and "Ray session closed" in log
    summary = json.loads((project / "data/08_reporting/data_gen_summary.json").read_text())
    assert summary["days"] == 4 and summary["quarantined"] > 0
    for name in ("customers", "cards", "merchants"):
        assert (project / f"data/01_raw/{name}.parquet").exists()
    before = _partition(project, "2025-06-11")

    one = kedro(
        project, "--pipelines", "data_gen", "--params", SMALL + ",data_gen.run_date=2025-06-11"
    )
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    pd.testing.assert_frame_equal(_partition(project, "2025-06-11"), before)
    assert len(list((project / "data/01_raw/transactions").glob("event_date=*"))) == 4
    assert (
        json.loads((project / "data/08_reporting/data_gen_summary.json").read_text())["days"] == 1
    )


def test_a_failing_node_still_closes_ray_and_says_why(project):
    failed = kedro(project, "--pipelines", "data_gen", "--params", "data_gen.n_days=0")
    log = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "data_gen.n_days must be >= 1, got 0" in log
    assert "Ray session closed" in log


TRAIN_SMALL = (
    "data_gen.n_customers=1500,data_gen.n_merchants=200,data_gen.n_regions=6,"
    "data_gen.n_days=30,data_gen.start_date=2025-05-01,"
    "training.train_days=14,training.valid_days=4,training.test_days=5,"
    "training.num_samples=2,training.num_boost_round=40,training.report_every=5,"
    "training.card_precision_k=20"
)


def test_kedro_run_trains_tracks_and_registers_in_mlflow(tmp_path_factory):
    """`kedro run`: every stage; one MLflow run with nested trials; a registered champion."""
    import mlflow  # noqa: PLC0415

    project = scratch_project(tmp_path_factory.mktemp("full"))
    run = kedro(project, "--params", TRAIN_SMALL)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    client = mlflow.MlflowClient(f"sqlite:///{project / 'data/mlflow/mlflow.db'}")
    experiment = client.get_experiment_by_name("payments-ml")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3  # the kedro run and its two trials
    parent = parents[0]
    for metric in ("test_average_precision", "test_roc_auc", "test_card_precision_at_20"):
        assert metric in parent.data.metrics and f"baseline_{metric[5:]}" in parent.data.metrics
    assert parent.data.params["training.num_samples"] == "2"
    assert {"git_commit", "data_window", "promotion"} <= set(parent.data.tags)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {
        f"plots/{name}.png"
        for name in ("pr_curve", "feature_importance", "calibration", "score_distribution")
    }
    assert str(client.get_model_version_by_alias("fraud_model", "champion").version) == "1"
    assert (project / "data/08_reporting/plots/pr_curve.png").stat().st_size > 10_000
