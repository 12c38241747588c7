"""Seven nights in a row: a 60-day history, then `kedro run --pipelines daily --params
run_date=D` for seven days, equals a full build over the 67 days.

Each run is a Kedro session of a scratch project, as the CLI opens it (catalog,
parameters, hooks, kedro-mlflow), on the test session's Ray cluster; the history and the
nights are the session's ``daily_nights`` (tests/nights.py), which the Airflow test
shares. Each night generates its day and that day's label reports, resolves the labels,
builds its features and online snapshot, and monitors; training is left to its own
schedule (``training.every_days: null``: only when asked). Compared: the training set,
both snapshot sources, the resolved labels and the online store, value for value (floats
to 1e-9 relative: running sums start earlier in a full build).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from payments_ml.config import project_settings
from tests.nights import HISTORY, NIGHT_DAYS, NIGHTS, run, world_project
from tests.project import assert_same_rows, read_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def projects(tmp_path_factory, ray_session, daily_nights) -> dict[str, Path]:
    full = world_project(tmp_path_factory.mktemp("full"))
    rebuild = run(full, ray_session, "data_gen", data_gen={"n_days": HISTORY + NIGHTS})
    rebuild += run(full, ray_session, "features")
    times = {"nights_s": daily_nights["times"], "full_rebuild_s": round(rebuild, 2)}
    sys.stdout.write(f"\nSeven nights, seconds: {json.dumps(times)}\n")  # shown by pytest -s
    return {"nightly": daily_nights["nightly"], "full": full}


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
    assert decision == {"run_date": NIGHT_DAYS[-1], "trained": False}
    quality = pd.read_parquet(reporting["data_quality"])
    assert quality["event_date"].iloc[-1] == decision["run_date"]
    assert len(quality) == HISTORY + NIGHTS


def test_each_night_logs_its_parameters_once_through_the_projects_mlflow_hook(projects):
    """kedro-mlflow's hook with batched writes (payments_ml/mlflow_hook.py) stands in for
    the plugin's: each night's run holds every parameter its nodes took, as the plugin
    names them, written once (the plugin's own hook would log them a second time)."""
    import mlflow  # noqa: PLC0415

    from payments_ml.mlflow_hook import MlflowHook  # noqa: PLC0415
    from payments_ml.settings import DISABLE_HOOKS_FOR_PLUGINS, HOOKS  # noqa: PLC0415

    assert [type(h) for h in HOOKS if "Mlflow" in type(h).__name__] == [MlflowHook]
    assert "kedro_mlflow" in DISABLE_HOOKS_FOR_PLUGINS
    uri = project_settings(projects["nightly"])["tracking_uri"]
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("payments-ml")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])
    nights = [r for r in runs if r.data.params.get("run_date") in NIGHT_DAYS]
    assert [r.data.params["run_date"] for r in nights] == NIGHT_DAYS
    # Named after what they did, the runner by its class (not kedro-mlflow's defaults).
    assert [r.info.run_name for r in nights] == [f"daily {day}" for day in NIGHT_DAYS]
    assert {r.data.tags["runner"] for r in nights} == {"SequentialRunner"}
    last = nights[-1].data.params
    assert last["data_gen.n_customers"] == "300" and last["monitoring.drift.min_rows"] == "50"
    assert last["features.run_date"] == NIGHT_DAYS[-1]
