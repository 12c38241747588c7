"""`kedro run --pipelines ingest,features` on the committed Sparkov sample (the real CLI)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from tests.conftest import PROJECT_ROOT
from tests.pipelines.ingest.sparkov import SAMPLE_DEFECTS
from tests.project import kedro, scratch_project

pytestmark = pytest.mark.slow

FIXTURE = "data/fixtures/sparkov_sample.csv"


def test_ingest_then_features_run_on_the_sparkov_sample(tmp_path, ray_session):
    """The shipped parameters on the committed sample replace what data_gen left behind."""
    project = scratch_project(tmp_path / "project")
    (project / FIXTURE).parent.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / FIXTURE, project / FIXTURE)
    raw = project / "data/01_raw"
    stale = raw / "transactions/event_date=2025-04-01"  # as if data_gen had run before
    stale.mkdir(parents=True)
    pd.read_csv(project / FIXTURE).head(3).to_parquet(stale / "part-00000-0.parquet")

    address = ray_session.get_runtime_context().gcs_address  # the session's cluster
    run = kedro(project, "--pipelines", "ingest,features", env={"RAY_ADDRESS": address})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    summary = json.loads((project / "data/08_reporting/ingest_summary.json").read_text())
    assert (summary["rows"], summary["valid"], summary["quarantined"]) == (400, 395, 5)
    assert summary["quarantine_by_check"] == {check: 1 for check in SAMPLE_DEFECTS.values()}
    assert "quarantined 1 row(s): transaction_id: duplicate" in run.stdout + run.stderr
    transactions = pd.read_parquet(raw / "transactions")
    quarantine = pd.read_parquet(raw / "transactions_quarantine")
    assert len(transactions) + len(quarantine) == 400 and not stale.exists()
    assert set(quarantine["quarantine_reason"]) == set(SAMPLE_DEFECTS.values())
    customers = pd.read_parquet(raw / "customers.parquet")
    merchants = pd.read_parquet(raw / "merchants.parquet")
    assert len(customers) == transactions["customer_id"].nunique() == 40
    assert set(merchants["source_merchant_id"]) == set(transactions["source_merchant_id"])

    # features ran unchanged on the ingested rows: one model-input row per valid transaction.
    training_set = pd.read_parquet(project / "data/05_model_input/training_set")
    assert sorted(training_set["transaction_id"]) == sorted(transactions["transaction_id"])
    assert training_set["customer_tx_count_30d"].max() > 0
    assert training_set["merchant_fraud_rate_30d"].max() > 0
