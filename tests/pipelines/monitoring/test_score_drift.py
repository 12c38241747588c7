"""Score drift against a model registered in a scratch MLflow registry."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from payments_ml.features.definitions import FEATURE_DEFAULTS, FEATURES
from payments_ml.monitoring import alerts as al
from payments_ml.monitoring import drift as dr
from payments_ml.monitoring.datasets import ParquetLogDataset
from payments_ml.pipelines.monitoring import nodes
from payments_ml.training.model import FraudModel, log_fraud_model
from tests.monitoring import synthetic as syn

SIGNAL = "customer_amount_avg_30d"
SCORED_AT = pd.Timestamp("2026-01-05", tz="UTC")


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return syn.feature_rows(n_days=28, per_day=300, seed=2)


@pytest.fixture(scope="module")
def model(tmp_path_factory, history) -> FraudModel:
    """A small LightGBM model registered as fraud_model version 1, test window days 23-27."""
    import lightgbm as lgb  # noqa: PLC0415
    import mlflow  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("mlflow")
    env = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        rng = np.random.default_rng(0)
        label = history[SIGNAL] + rng.normal(0, 1, len(history)) > 12.5
        booster = lgb.train(
            {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1},
            lgb.Dataset(
                history[FEATURES].to_numpy(np.float64),
                label.to_numpy(float),
                feature_name=list(FEATURES),
            ),
            num_boost_round=20,
        )
        fraud_model = FraudModel(
            booster=booster,
            features=list(FEATURES),
            defaults=dict(FEATURE_DEFAULTS),
            thresholds={"review": 0.3, "decline": 0.8},
            metadata={"test_window": [syn.day(23), syn.day(27)]},
        )
        experiment = mlflow.create_experiment(
            "monitoring-tests", artifact_location=(folder / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment):
            log_fraud_model(fraud_model, history, registered_model_name="fraud_model")
        yield fraud_model
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_log(folder: Path, rows: pd.DataFrame, scores: np.ndarray, version: str, start: int = 0):
    """The scorer's log layout: event_date partitions, scores, decisions, features."""
    frame = rows.assign(
        fraud_probability=scores,
        decision=np.where(scores >= 0.8, "decline", np.where(scores >= 0.3, "review", "approve")),
        model_version=version,
        scored_at=SCORED_AT + pd.to_timedelta(np.arange(start, start + len(rows)), unit="s"),
        event_date=rows["event_timestamp"].dt.strftime("%Y-%m-%d"),
    ).drop(columns=["is_fraud", "fraud_scenario", "label_available_at"])
    pads.write_dataset(
        pa.Table.from_pandas(frame, preserve_index=False),
        folder,
        format="parquet",
        partitioning=["event_date"],
        partitioning_flavor="hive",
        basename_template=f"part-{version}-{start}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
    )


def recent(history: pd.DataFrame) -> pd.DataFrame:
    return history[history["event_timestamp"] >= pd.Timestamp(syn.day(21), tz="UTC")]


@pytest.fixture
def measure(tmp_path, history, monitoring_params, training_split):
    """Drift of ``history`` against the log under tmp_path/scored, as the node measures it."""

    def run() -> dict:
        log = ParquetLogDataset(filepath=str(tmp_path / "scored")).load()
        return nodes.measure_drift(history, log, training_split, monitoring_params, "fraud_model")

    return run


def test_faithful_serving_shows_no_drift(tmp_path, model, history, measure, monitoring_params):
    served = recent(history)
    write_log(tmp_path / "scored", served, model.predict_proba(served), "1")
    drift = measure()
    score = drift["score_drift"]
    assert score["status"] == "ok" and score["model_version"] == "1"
    assert score["reference_window"] == [syn.day(23), syn.day(27)]  # the model's test window
    assert score["served_rows"] == len(served) and score["psi"] < 0.1
    assert set(score["decision_shares"]["served"]) == {"approve", "review", "decline"}
    assert drift["served_feature_drift"]["status"] == "ok"
    assert max(drift["served_feature_drift"]["psi"].values()) < 0.1
    rules = al.load_rules(monitoring_params["rules"])
    assert dr.drift_alerts(drift, rules) == []


def test_a_skewed_served_feature_moves_the_scores(
    tmp_path, model, history, measure, monitoring_params
):
    served = recent(history).assign(**{SIGNAL: lambda f: f[SIGNAL] + 4.0})
    # An older model version scored earlier: only the latest version is judged.
    write_log(tmp_path / "scored", recent(history).head(500), np.full(500, 0.5), "0")
    write_log(tmp_path / "scored", served, model.predict_proba(served), "1", start=10_000)
    drift = measure()
    assert drift["score_drift"]["served_rows"] == len(served)
    found = dr.drift_alerts(drift, al.load_rules(monitoring_params["rules"]))
    assert sorted((a.rule, a.severity, a.feature) for a in found) == [
        ("score_drift", "critical", None),
        ("served_feature_drift", "critical", SIGNAL),
    ]
    metrics = nodes.raise_alerts(_quality_table(), drift, monitoring_params)[2]
    assert metrics["score_psi"]["value"] == drift["score_drift"]["psi"] > 0.25


def test_scores_of_a_version_the_registry_lacks_are_skipped(
    tmp_path, model, history, measure, caplog
):
    served = recent(history)
    write_log(tmp_path / "scored", served, model.predict_proba(served), "7")
    drift = measure()
    assert drift["score_drift"] == {
        "status": "skipped",
        "reason": "model version '7' of the scored rows could not be loaded",
        "model_version": "7",
    }
    assert "cannot load models:/fraud_model/7" in caplog.text
    assert drift["served_feature_drift"]["status"] == "ok"  # needs no model


def _quality_table() -> pd.DataFrame:
    from payments_ml.monitoring import quality as qu  # noqa: PLC0415

    return pd.DataFrame(
        {"event_date": [syn.day(0)], "rows_arrived": [1], "late_rows_new": [0]}
        | {c: [np.nan] for c in ("row_count_ratio", "quarantine_rate", "duplicate_rate")}
        | {c: [np.nan] for c in ("late_rate", "amount_psi", "fraud_rate_ratio")}
        | {f"null_rate_{c}": [0.0] for c in qu.CONTRACT_COLUMNS}
    )


def test_a_days_first_hours_are_compared_with_the_same_hours_of_weekdays(
    tmp_path, model, history, measure, monitoring_params
):
    """A replay of a Tuesday's first 20 hours (what `make run` sends): against whole days,
    hour_of_day and is_night drift by construction; against the same hours of weekdays
    (the served calendar), faithful serving raises nothing."""
    day = history[history["event_timestamp"].dt.strftime("%Y-%m-%d") == syn.day(22)]
    served = day[day["event_timestamp"].dt.hour < 20]
    write_log(tmp_path / "scored", served, model.predict_proba(served), "1")
    drift = measure()
    served_features = drift["served_feature_drift"]
    first, last = served["event_timestamp"].min(), served["event_timestamp"].max()
    assert (
        served_features["calendar"]
        == (f"{first:%H:%M:%S} to {last:%H:%M:%S} UTC, weekdays")
        == drift["score_drift"]["calendar"]
    )
    assert served_features["status"] == "ok" and drift["score_drift"]["status"] == "ok"
    assert dr.drift_alerts(drift, al.load_rules(monitoring_params["rules"])) == []
    train = history[history["event_timestamp"] < pd.Timestamp(syn.day(21), tz="UTC")]
    whole_days = dr.feature_drift(train, served, ["hour_of_day"], 10, 200)
    assert whole_days["psi"]["hour_of_day"] > 0.1  # what the calendar spares


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (["2025-06-24 06:00:00", "2025-06-24 09:30:05"], ([21600, 34205], [False])),
        (["2025-06-28 22:00:00", "2025-06-29 01:00:00"], ([79200, 3600], [True])),
        (["2025-06-27 12:00:00", "2025-06-28 12:00:00"], (None, [False, True])),
        (["2025-06-02 00:00:00", "2025-06-09 00:00:00"], (None, None)),
    ],
)
def test_the_served_calendar(stamps, expected):
    calendar = dr.served_calendar(pd.Series(pd.to_datetime(stamps, utc=True)))
    assert (calendar["seconds"], calendar["weekend"]) == expected


def test_rows_in_a_calendar_that_crosses_midnight():
    rows = pd.DataFrame(
        {"event_timestamp": pd.to_datetime(
            ["2025-06-20 21:59:59", "2025-06-20 22:00:00", "2025-06-21 00:30:00",
             "2025-06-21 01:00:01", "2025-06-21 23:00:00"], utc=True,
        )}
    )  # fmt: skip
    calendar = {"seconds": [79200, 3600], "weekend": [True]}  # Saturday 22:00 to 01:00
    kept = dr.in_calendar(rows, calendar)["event_timestamp"].dt.strftime("%d %H:%M").tolist()
    assert kept == ["21 00:30", "21 23:00"]  # Friday 22:00 is a weekday
    assert dr.describe_calendar(calendar) == "22:00:00 to 01:00:00 UTC, weekends"
    assert dr.describe_calendar({"seconds": None, "weekend": None}) == "every hour and day"
