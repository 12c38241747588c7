"""A Kedro session runs the monitoring pipeline in a scratch project, on small data.

In this process (the session's Ray cluster, no second interpreter), as `kedro run
--pipelines monitoring` does: the project's catalog, parameters, hooks and kedro-mlflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from payments_ml.contracts import to_arrow
from payments_ml.monitoring import alerts as al
from tests.monitoring import synthetic as syn
from tests.pipelines.monitoring.conftest import split_of_28_days
from tests.project import in_process_session, scratch_project

PARAMS = {"monitoring": {"as_of": "2025-07-15T00:00:00Z", "drift": {"min_rows": 200}}}


def _write(table: pa.Table, folder: Path) -> None:
    pads.write_dataset(
        table,
        folder,
        format="parquet",
        partitioning=["event_date"],
        partitioning_flavor="hive",
        existing_data_behavior="overwrite_or_ignore",
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A scratch project holding 28 days of transactions, one bad, a training set, and the
    split the training pipeline wrote."""
    project = scratch_project(tmp_path_factory.mktemp("monitoring_project"))
    valid, quarantine = syn.null_merchants(
        syn.transactions(n_days=28), syn.empty_quarantine(), 27, 0.3
    )
    data = project / "data"
    _write(to_arrow(valid), data / "01_raw/transactions")
    _write(to_arrow(quarantine), data / "01_raw/transactions_quarantine")
    features = syn.feature_rows(n_days=28, per_day=300)
    features["event_date"] = features["event_timestamp"].dt.strftime("%Y-%m-%d")
    _write(
        pa.Table.from_pandas(features, preserve_index=False), data / "05_model_input/training_set"
    )
    (data / "08_reporting").mkdir(parents=True, exist_ok=True)
    (data / "08_reporting/training_split.json").write_text(json.dumps(split_of_28_days()))
    return project


@pytest.fixture
def kedro_session(project, ray_session):
    with in_process_session(project, PARAMS, ray_session) as session:
        yield session


def test_kedro_run_monitoring_writes_reports_alerts_and_mlflow_metrics(
    project, kedro_session, caplog
):
    kedro_session.run(pipeline_names=["monitoring"])
    assert "Score drift skipped: no scored transactions logged yet" in caplog.text
    reporting = project / "data/08_reporting"
    quality = pd.read_parquet(reporting / "data_quality.parquet")
    assert len(quality) == 28 and quality["rows_arrived"].sum() == 28 * 400
    drift = json.loads((reporting / "drift.json").read_text())
    assert drift["feature_drift"]["status"] == "ok"
    assert drift["score_drift"]["status"] == "skipped"
    state = json.loads((reporting / "monitoring_state.json").read_text())
    assert len(state["days"]) == 28
    active = al.active_alerts(reporting / "alerts.jsonl")
    assert sorted((a["rule"], a["severity"], a["day"]) for a in active) == [
        ("null_rate", "critical", syn.day(27)),
        ("quarantine_rate", "critical", syn.day(27)),
    ]
    assert all(a["run_id"] == drift["run_id"] for a in active)

    import mlflow  # noqa: PLC0415

    uri = f"sqlite:///{project / 'data/mlflow/mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("payments-ml")
    (only,) = client.search_runs([experiment.experiment_id])
    assert only.data.metrics["monitoring.alerts_critical"] == 2
    assert only.data.metrics["monitoring.feature_psi_max"] < 0.1
    assert only.data.params["monitoring.drift.recent_days"] == "7"
    assert [a.path for a in client.list_artifacts(only.info.run_id)] == ["drift.json"]
