"""The data_gen pipeline on a catalog of temporary folders, on the session's Ray cluster."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from payments_ml.data_gen import generator as g
from payments_ml.datasets import ParquetFilesDataset, RayParquetDataset
from payments_ml.pipelines.data_gen import create_pipeline
from payments_ml.pipelines.data_gen.nodes import generation_days

pytestmark = pytest.mark.usefixtures("ray_session")


def _run(params: dict, root: Path) -> dict:
    replace = params.get("run_date")
    catalog = DataCatalog(
        {
            "raw_transactions": RayParquetDataset(
                filepath=str(root / "transactions"),
                partition_cols=["event_date"],
                replace_partitions=replace,
            ),
            "transactions_quarantine": RayParquetDataset(
                filepath=str(root / "quarantine"),
                partition_cols=["event_date"],
                replace_partitions=replace,
            ),
            "labels": RayParquetDataset(
                filepath=str(root / "labels"),
                partition_cols=["report_date"],
                replace_partitions=replace,
            ),
            "raw_transaction_files": ParquetFilesDataset(filepath=str(root / "transactions")),
            "data_gen_summary": MemoryDataset(),
            "params:data_gen": MemoryDataset(params),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog.load("data_gen_summary")


def _partition(root: Path, name: str, day: str) -> pd.DataFrame:
    return pd.read_parquet(root / name / f"event_date={day}").sort_values(
        "transaction_id", ignore_index=True
    )


@pytest.fixture
def dirty_params(small_params):
    return copy.deepcopy(small_params) | {"corruption_rate": 0.01}


def test_full_run_writes_every_day_and_conserves_rows(dirty_params, tmp_path):
    summary = _run(dirty_params, tmp_path)
    days = generation_days(dirty_params)
    written = sorted(
        p.name for p in (tmp_path / "transactions").iterdir() if not p.name.startswith("_")
    )
    assert written == [f"event_date={d}" for d in days]
    valid = pd.read_parquet(tmp_path / "transactions")
    quarantine = pd.read_parquet(tmp_path / "quarantine")
    # Independent count: generate the same days directly, without Ray.
    world = g.world_of(dirty_params)
    generated = sum(len(g.generate_day(world, d)) for d in days)
    assert len(valid) + len(quarantine) == generated == summary["transactions"]
    assert summary["valid"] == len(valid) and summary["quarantined"] == len(quarantine) > 0
    assert quarantine["quarantine_reason"].notna().all()
    assert sum(summary["quarantine_by_check"].values()) >= len(quarantine)
    assert summary["days"] == len(days) and summary["first_day"] == str(days[0])
    assert valid["transaction_id"].is_unique
    assert {"transaction_id", "event_timestamp", "label_available_at", "fraud_scenario"} <= set(
        valid
    )


def test_one_day_regenerated_alone_equals_the_full_runs_partition(dirty_params, tmp_path):
    _run(dirty_params, tmp_path)
    day = str(generation_days(dirty_params)[3])
    first_day = str(generation_days(dirty_params)[0])
    before = {n: _partition(tmp_path, n, day) for n in ("transactions", "quarantine")}
    untouched = sorted((tmp_path / "transactions" / f"event_date={first_day}").iterdir())
    mtimes = [p.stat().st_mtime_ns for p in untouched]

    summary = _run(dirty_params | {"run_date": day}, tmp_path)

    assert summary["days"] == 1 and summary["first_day"] == day
    for name, frame in before.items():
        pd.testing.assert_frame_equal(_partition(tmp_path, name, day), frame)
    assert [p.stat().st_mtime_ns for p in untouched] == mtimes
    assert len(list((tmp_path / "transactions").glob("event_date=*"))) == dirty_params["n_days"]


def _reports(root: Path, day: str | None = None) -> pd.DataFrame:
    folder = root / "labels" / (f"report_date={day}" if day else "")
    frame = pd.read_parquet(folder).drop(columns="report_date", errors="ignore")
    return frame.sort_values("transaction_id", ignore_index=True)


def test_the_labels_feed_holds_the_reports_that_arrived_by_report_day(small_params, tmp_path):
    """The full run's feed: one chargeback per fraud whose label arrived by the last day,
    in the partition of its arrival day; a day regenerated alone rewrites that day's
    reports, including the late ones of earlier days' frauds, identically."""
    params = copy.deepcopy(small_params) | {"n_days": 12}
    summary = _run(params, tmp_path)
    days = generation_days(params)
    valid = pd.read_parquet(tmp_path / "transactions")
    frauds = valid[valid["is_fraud"] & (valid["label_available_at"].dt.date <= days[-1])]
    feed = _reports(tmp_path)
    assert summary["label_reports"] == len(feed) == len(frauds) > 0
    assert set(feed["transaction_id"]) == set(frauds["transaction_id"])
    assert feed["is_fraud"].all() and (feed["source"] == "chargeback").all()
    for folder in (tmp_path / "labels").glob("report_date=*"):
        arrived = pd.read_parquet(folder)["reported_at"].dt.strftime("%Y-%m-%d")
        assert (arrived == folder.name.removeprefix("report_date=")).all()
    day = str(days[8])
    before = _reports(tmp_path, day)
    earlier = valid["event_date"].astype(str) < day
    late = before["transaction_id"].isin(valid.loc[earlier, "transaction_id"])
    assert late.any()  # reports of earlier days' frauds arrive on this day
    _run(params | {"run_date": day}, tmp_path)
    pd.testing.assert_frame_equal(_reports(tmp_path, day), before)


def test_generation_days_come_from_the_period_or_the_run_date(small_params):
    days = generation_days(small_params)
    assert len(days) == small_params["n_days"] and days[0] == dt.date.fromisoformat(
        small_params["start_date"]
    )
    assert generation_days(small_params | {"run_date": "2026-01-05"}) == [dt.date(2026, 1, 5)]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"run_date": "11/06/2025"},
            r"data_gen.run_date must be an ISO date \(YYYY-MM-DD\), got '11/06/2025'",
        ),
        ({"start_date": "soon"}, r"data_gen.start_date must be an ISO date"),
        ({"n_days": 0}, r"data_gen.n_days must be >= 1, got 0"),
    ],
)
def test_bad_dates_say_what_is_expected(small_params, override, message):
    with pytest.raises(ValueError, match=message):
        generation_days(small_params | override)
