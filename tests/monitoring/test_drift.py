"""Feature and score drift, the scorer's recent log, drift alerts."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from payments_ml.features.definitions import FEATURES
from payments_ml.monitoring import alerts as al
from payments_ml.monitoring import drift as dr
from tests.monitoring import synthetic as syn

RULES = al.load_rules(
    {
        "feature_drift": {"metric": "feature_psi", "warning": 0.1, "critical": 0.25},
        "score_drift": {"metric": "score_psi", "warning": 0.1, "critical": 0.25},
        "volume_drop": {"metric": "row_count_ratio", "direction": "below", "warning": 0.8},
    }
)


def test_only_the_shifted_feature_drifts():
    rows = syn.feature_rows(n_days=14, per_day=300)
    reference, recent = rows.iloc[:2100], rows.iloc[2100:].copy()
    recent["customer_amount_avg_30d"] += 2.0  # one standard deviation
    report = dr.feature_drift(reference, recent, FEATURES, n_bins=10, min_rows=100)
    assert report["status"] == "ok" and report["recent_rows"] == 2100
    assert next(iter(report["psi"])) == "customer_amount_avg_30d"  # largest first
    assert report["psi"]["customer_amount_avg_30d"] > 0.25
    others = {k: v for k, v in report["psi"].items() if k != "customer_amount_avg_30d"}
    assert max(others.values()) < 0.05
    found = dr.drift_alerts({"feature_drift": report}, RULES)
    assert [(a.severity, a.feature) for a in found] == [("critical", "customer_amount_avg_30d")]


def test_too_few_rows_are_not_compared():
    rows = syn.feature_rows(n_days=2, per_day=50)
    report = dr.feature_drift(rows, rows.head(10), FEATURES, n_bins=10, min_rows=20)
    assert report == {
        "status": "skipped",
        "reason": "a window has fewer than min_rows=20 rows",
        "reference_rows": 100,
        "recent_rows": 10,
    }
    assert dr.drift_alerts({"feature_drift": report}, RULES) == []


def test_a_missing_feature_is_named():
    rows = syn.feature_rows(n_days=1, per_day=50)
    with pytest.raises(ValueError, match=r"feature drift needs the columns \['is_night'\]"):
        dr.feature_drift(rows, rows.drop(columns="is_night"), FEATURES, n_bins=5, min_rows=1)


def test_score_drift_compares_probabilities_and_decisions():
    rng = np.random.default_rng(1)
    reference = rng.beta(1, 60, 5000)
    same = dr.score_drift(reference, rng.beta(1, 60, 2000), n_bins=10, min_rows=100)
    assert same["status"] == "ok" and same["psi"] < 0.05
    decide = np.where(reference > 0.05, "review", "approve")
    served = rng.beta(1, 15, 2000)
    moved = dr.score_drift(
        reference,
        served,
        n_bins=10,
        min_rows=100,
        reference_decisions=decide,
        served_decisions=np.where(served > 0.05, "review", "approve"),
    )
    assert moved["psi"] > 0.25
    shares = moved["decision_shares"]
    assert shares["served"]["review"] > 3 * shares["reference"]["review"]
    assert shares["served"]["decline"] == 0.0
    assert moved["quantiles"]["served"]["p50"] > moved["quantiles"]["reference"]["p50"]
    found = dr.drift_alerts({"score_drift": moved | {"model_version": "3"}}, RULES)
    assert [(a.rule, a.severity, a.context["model_version"]) for a in found] == [
        ("score_drift", "critical", "3")
    ]
    few = dr.score_drift(reference, served[:5], n_bins=10, min_rows=100)
    assert few["status"] == "skipped" and dr.drift_alerts({"score_drift": few}, RULES) == []


def _log(tmp_path, frame: pd.DataFrame) -> pads.Dataset:
    pads.write_dataset(
        pa.Table.from_pandas(frame, preserve_index=False),
        tmp_path / "scored",
        format="parquet",
        partitioning=["event_date"],
        partitioning_flavor="hive",
    )
    return pads.dataset(tmp_path / "scored", format="parquet", partitioning="hive")


def test_the_recent_window_ends_at_the_last_score(tmp_path):
    start = pd.Timestamp("2026-01-10", tz="UTC")
    scored_at = start + pd.to_timedelta(np.arange(20), unit="D")
    frame = pd.DataFrame(
        {
            "event_date": ["2025-06-01"] * 10 + ["2025-06-02"] * 10,
            "scored_at": scored_at,
            "fraud_probability": np.linspace(0, 1, 20),
        }
    )
    recent = dr.recent_scored(_log(tmp_path, frame), 7, ["scored_at", "fraud_probability"])
    assert list(recent.columns) == ["scored_at", "fraud_probability"]
    assert recent["scored_at"].min() == start + pd.Timedelta(days=13)  # 7 days before the last
    assert len(recent) == 7
    assert dr.recent_scored(None, 7, ["scored_at"]).empty
    with pytest.raises(
        ValueError, match=r"the scored-transactions log lacks columns \['decision'\]"
    ):
        dr.recent_scored(_log(tmp_path / "b", frame), 7, ["scored_at", "decision"])


def test_iso_day():
    assert dr.iso_day(dt.date(2025, 6, 29).toordinal() - dt.date(1970, 1, 1).toordinal()) == (
        "2025-06-29"
    )
