"""Seven nights in a row: a 60-day history, then `kedro run --pipelines daily --params
run_date=D` for seven days, equals a full build over the 67 days.

Each run is a Kedro session of a scratch project, as the CLI opens it (catalog,
parameters, hooks, kedro-mlflow), on the test session's Ray cluster. Each night
generates its day and that day's label reports, resolves the labels, builds its features
and online snapshot, and monitors; training is left to its own schedule
(``training.every_days: null``: only when asked). Compared: the training set, both
snapshot sources, the resolved labels and the online store, value for value (floats to
1e-9 relative: running sums start earlier in a full build).
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
from tests.project import assert_same_rows, in_process_session, read_dataset, scratch_project

pytestmark = pytest.mark.slow

START = dt.date(2025, 3, 1)
HISTORY, NIGHTS = 60, 7
WORLD = {
    "data_gen": {
        "n_customers": 300,
        "n_merchants": 60,
        "n_regions": 4,
        "start_date": str(START),
        "corruption_rate": 0.01,
    },
    "training": {"every_days": None},
    "monitoring": {"drift": {"min_rows": 50}},
}


def _run(project: Path, ray_session, pipeline: str, **params) -> float:
    runtime = {**WORLD, "data_gen": {**WORLD["data_gen"], **params.pop("data_gen", {})}, **params}
    started = time.perf_counter()
    with in_process_session(project, runtime, ray_session) as session:
        session.run(pipeline_names=[pipeline])
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def projects(tmp_path_factory, ray_session) -> dict[str, Path]:
    nightly = scratch_project(tmp_path_factory.mktemp("nightly"))
    _run(nightly, ray_session, "data_gen", data_gen={"n_days": HISTORY})
    _run(nightly, ray_session, "features")
    nights = {}
    for i in range(NIGHTS):
        night = str(START + dt.timedelta(days=HISTORY + i))
        nights[night] = _run(nightly, ray_session, "daily", run_date=night)
    full = scratch_project(tmp_path_factory.mktemp("full"))
    rebuild = _run(full, ray_session, "data_gen", data_gen={"n_days": HISTORY + NIGHTS})
    rebuild += _run(full, ray_session, "features")
    times = {"nights_s": nights, "full_rebuild_s": rebuild}
    sys.stdout.write(f"\nSeven nights, seconds: {json.dumps(times)}\n")  # shown by pytest -s
    return {"nightly": nightly, "full": full}


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("raw_transactions", ["transaction_id"]),
        ("labels", ["transaction_id", "reported_at"]),
        ("transaction_labels", ["transaction_id"]),
        ("training_set", ["transaction_id"]),
        ("customer_snapshots", ["customer_id", "snapshot_ts"]),
        ("merchant_snapshots", ["merchant_id", "snapshot_ts"]),
    ],
)
def test_seven_nights_equal_the_full_build(projects, name, keys):
    full, nightly = (read_dataset(projects[side], name, keys) for side in ("full", "nightly"))
    assert_same_rows(nightly, full)


def test_the_online_store_ends_as_after_the_full_build(projects):
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    raw = read_dataset(projects["full"], "raw_transactions", ["transaction_id"])
    online = {}
    for side, project in projects.items():
        store = fs.open_store(project_settings(project)["feast"])
        online[side] = {
            view: fs.read_online(store, view, key, raw[key].unique())
            for view, key in (
                ("customer_snapshot", "customer_id"),
                ("merchant_snapshot", "merchant_id"),
            )
        }
    for view in online["full"]:
        pd.testing.assert_frame_equal(online["nightly"][view], online["full"][view])


def test_each_night_monitored_its_day_and_left_training_to_its_schedule(projects):
    reporting = project_settings(projects["nightly"])["datasets"]
    decision = json.loads(Path(reporting["training_decision"]).read_text())
    assert decision == {
        "run_date": str(START + dt.timedelta(days=HISTORY + NIGHTS - 1)),
        "trained": False,
    }
    quality = pd.read_parquet(reporting["data_quality"])
    assert quality["event_date"].iloc[-1] == decision["run_date"]
    assert len(quality) == HISTORY + NIGHTS
