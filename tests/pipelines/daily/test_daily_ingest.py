"""Nights on your own files: `kedro run --pipelines daily_ingest --params
"run_date=D,ingest.path=D.csv"` for three days after a first day ingested whole equals
an ingest of the concatenated file followed by a full features build.

Each run is a Kedro session of a scratch project on the test session's Ray cluster, as
in test_seven_nights; the files are in the Kaggle "Sparkov" layout the shipped
``parameters_ingest.yml`` maps. The last night's file also holds a transaction of the
day before (a late arrival): it is quarantined in the night's partition, not written to
the earlier day. Compared: the transactions, the training set and both snapshot sources,
value for value (floats to 1e-9 relative: running sums start earlier in a full build).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from payments_ml.config import project_settings
from tests.pipelines.ingest.sparkov import sparkov_transactions
from tests.project import assert_same_rows, in_process_session, read_dataset, scratch_project

pytestmark = pytest.mark.slow

START = dt.date(2025, 6, 9)
DAYS = [str(START + dt.timedelta(days=i)) for i in range(4)]
LATE_ID = "late-arrival-of-the-day-before"
WORLD = {"training": {"every_days": None}, "monitoring": {"drift": {"min_rows": 50}}}
# Outputs a night writes by partition: a rerun of the night must leave their bytes as they were.
PARTITIONED = (
    "raw_transactions",
    "transactions_quarantine",
    "training_set",
    "customer_snapshots",
    "merchant_snapshots",
)


def _run(project: Path, ray_session, pipeline: str, path: Path, **params) -> float:
    runtime = WORLD | {"ingest": {"path": str(path)}} | params
    started = time.perf_counter()
    with in_process_session(project, runtime, ray_session) as session:
        session.run(pipeline_names=[pipeline])
    return time.perf_counter() - started


def _day_files(folder: Path) -> dict[str, Path]:
    """One Sparkov file per day; the last also holds a late transaction of the day before."""
    rows = sparkov_transactions(
        1200, n_customers=60, n_merchants=20, start=DAYS[0], n_days=len(DAYS), seed=21
    )
    day = rows["trans_date_trans_time"].str[:10]
    late = rows[day == DAYS[-2]].tail(1)
    late = late.assign(trans_num=LATE_ID, trans_date_trans_time=f"{DAYS[-2]} 23:59:59")
    files = {}
    for d in DAYS:
        files[d] = folder / f"{d}.csv"
        pd.concat([rows[day == d], late if d == DAYS[-1] else None]).to_csv(files[d])
    rows.to_csv(folder / "all.csv")  # the concatenated files, less the late arrival
    return files


def _bytes(project: Path) -> dict[str, bytes]:
    datasets = project_settings(project)["datasets"]
    return {
        str(f): f.read_bytes()
        for name in PARTITIONED
        for f in sorted(Path(datasets[name]).rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def projects(tmp_path_factory, ray_session) -> dict[str, Path]:
    files = _day_files(tmp_path_factory.mktemp("files"))
    nightly = scratch_project(tmp_path_factory.mktemp("nightly"))
    _run(nightly, ray_session, "ingest", files[DAYS[0]])
    _run(nightly, ray_session, "features", files[DAYS[0]])
    nights = {d: _run(nightly, ray_session, "daily_ingest", files[d], run_date=d) for d in DAYS[1:]}
    before = _bytes(nightly)
    rerun = _run(nightly, ray_session, "daily_ingest", files[DAYS[-1]], run_date=DAYS[-1])
    full = scratch_project(tmp_path_factory.mktemp("full"))
    rebuild = _run(full, ray_session, "ingest", files[DAYS[0]].with_name("all.csv"))
    rebuild += _run(full, ray_session, "features", files[DAYS[0]])
    times = {"nights_s": nights, "rerun_s": rerun, "full_rebuild_s": rebuild}
    sys.stdout.write(f"\nIngested nights, seconds: {json.dumps(times)}\n")  # pytest -s
    return {"nightly": nightly, "full": full, "before_rerun": before}


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("raw_transactions", ["transaction_id"]),
        ("training_set", ["transaction_id"]),
        ("customer_snapshots", ["customer_id", "snapshot_ts"]),
        ("merchant_snapshots", ["merchant_id", "snapshot_ts"]),
    ],
)
def test_ingested_nights_equal_one_ingest_and_a_full_build(projects, name, keys):
    full, nightly = (read_dataset(projects[side], name, keys) for side in ("full", "nightly"))
    assert_same_rows(nightly, full)


def test_a_rerun_of_a_night_changes_no_byte(projects):
    before = projects["before_rerun"]
    assert len(before) > len(DAYS) and _bytes(projects["nightly"]) == before


def test_a_late_row_of_the_day_before_is_quarantined_in_the_night(projects):
    nightly = projects["nightly"]
    quarantine = read_dataset(nightly, "transactions_quarantine", ["transaction_id"])
    late = quarantine.set_index("transaction_id").loc[LATE_ID]
    assert late["event_date"] == DAYS[-1]
    assert late["quarantine_reason"] == f"event_timestamp: not on run_date {DAYS[-1]}"
    assert LATE_ID not in set(
        read_dataset(nightly, "raw_transactions", ["transaction_id"])["transaction_id"]
    )
    summary = json.loads(Path(project_settings(nightly)["datasets"]["ingest_summary"]).read_text())
    assert summary["other_days"] == {DAYS[-2]: 1}
    customers = pd.read_parquet(project_settings(nightly)["datasets"]["customers"])
    assert customers["n_transactions"].sum() == 1200  # every night's rows, the late one not


def test_each_night_ran_to_the_training_decision(projects):
    reporting = project_settings(projects["nightly"])["datasets"]
    decision = json.loads(Path(reporting["training_decision"]).read_text())
    assert decision == {"run_date": DAYS[-1], "trained": False}
    assert pd.read_parquet(reporting["data_quality"])["event_date"].iloc[-1] == DAYS[-1]
