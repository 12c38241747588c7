"""Feast: definitions, online writes and reads, point-in-time joins, replay, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from payments_ml.features import windows as fw
from payments_ml.features.definitions import CUSTOMER_FEATURES, MERCHANT_FEATURES
from tests.feature_store.conftest import assert_bad_input_writes_nothing

fs = pytest.importorskip("payments_ml.feature_store.store")


def test_definitions_are_registered(repo):
    store = repo["store"]
    assert {v.name for v in store.list_feature_views()} == {
        "customer_snapshot",
        "merchant_snapshot",
        "customer_today",
    }
    assert {e.name for e in store.list_entities()} >= {"customer", "merchant"}
    service = store.get_feature_service("fraud_model_v1")
    assert {p.name for p in service.feature_view_projections} == {
        "customer_snapshot",
        "merchant_snapshot",
    }
    for view in store.list_feature_views():
        assert view.description and view.tags and view.ttl is not None


def test_online_store_serves_each_entitys_latest_snapshot(repo, snapshots):
    store = repo["store"]
    latest = fs.latest_rows(snapshots["customer"], "customer_id")
    assert fs.write_online(store, store.get_feature_view("customer_snapshot"), latest) == len(
        latest
    )
    sample = latest.sample(50, random_state=1)
    online = fs.read_online(
        store, "customer_snapshot", "customer_id", sample["customer_id"].to_numpy()
    )
    for column in ("tx_count_1d", "tx_count_30d", "amount_sum_7d", "last_tx_ns"):
        np.testing.assert_allclose(online[column].to_numpy(float), sample[column].to_numpy(float))
    assert [list(v) for v in online["late_tx_ns"]] == [list(v) for v in sample["late_tx_ns"]]


def test_unknown_entities_come_back_empty_and_complete_to_cold_start(repo):
    online = fs.read_online(
        repo["store"], "customer_snapshot", "customer_id", np.array([987654321])
    )
    assert online["tx_count_30d"].isna().all()
    filled = fw.complete_snapshot(online)
    assert filled.loc[0, "tx_count_30d"] == 0 and filled.loc[0, "amount_sum_30d"] == 0.0
    assert len(filled.loc[0, "late_tx_ns"]) == 0


def test_point_in_time_join_rebuilds_the_training_rows(repo, snapshots, generated_transactions):
    """Feast's historical join of the snapshots + today's part = training_set, exactly."""
    rows = snapshots["training_set"].sample(400, random_state=7).reset_index(drop=True)
    entity_df = rows[["customer_id", "merchant_id", "event_timestamp"]]
    service = repo["store"].get_feature_service("fraud_model_v1")
    joined = (
        repo["store"]
        .get_historical_features(entity_df=entity_df.assign(row=range(len(rows))), features=service)
        .to_df()
        .sort_values("row")
        .reset_index(drop=True)
    )
    # The merchant features are snapshot-only: equal as they are.
    merchant = joined[MERCHANT_FEATURES].astype(float).fillna(0.0)
    pd.testing.assert_frame_equal(merchant, rows[MERCHANT_FEATURES].astype(float), rtol=1e-12)
    # The customer snapshot plus today's transactions gives every customer window.
    customer = fw.customer_window_features(
        rows["customer_id"].to_numpy(),
        fw.to_ns(rows["event_timestamp"]),
        fw.complete_snapshot(joined),
        generated_transactions,
    )
    pd.testing.assert_frame_equal(
        customer[CUSTOMER_FEATURES].astype(float), rows[CUSTOMER_FEATURES].astype(float), rtol=1e-9
    )


def test_replaying_a_day_online_gives_the_training_values(repo, snapshots, generated_transactions):
    """Nightly snapshot of day D in the online store + the day streamed = training_set of D."""
    store = repo["store"]
    tx = generated_transactions
    ns = fw.to_ns(tx["event_timestamp"])
    day = int(np.median(fw.day_of(ns)))
    today = tx[fw.day_of(ns) == day].reset_index(drop=True)
    customers = today["customer_id"].unique()
    nightly = fw.customer_snapshot(fw.customer_daily(tx), customers, np.full(len(customers), day))
    nightly.insert(0, "customer_id", customers)
    nightly["snapshot_ts"] = pd.Timestamp(day * fw.NS_DAY, tz="UTC")
    fs.write_online(store, store.get_feature_view("customer_snapshot"), nightly)

    online = fs.read_online(
        store, "customer_snapshot", "customer_id", today["customer_id"].to_numpy()
    )
    served = fw.customer_window_features(
        today["customer_id"].to_numpy(),
        fw.to_ns(today["event_timestamp"]),
        fw.complete_snapshot(online),
        today,
    )
    expected = snapshots["training_set"].set_index("transaction_id").loc[today["transaction_id"]]
    mismatches = ~np.isclose(
        served[CUSTOMER_FEATURES].to_numpy(float),
        expected[CUSTOMER_FEATURES].to_numpy(float),
        rtol=1e-9,
        equal_nan=True,
    )
    assert len(today) > 300 and mismatches.sum() == 0


def test_bad_input_names_the_column_and_writes_nothing(repo, snapshots):
    assert_bad_input_writes_nothing(repo["store"], snapshots["merchant"])


def test_redis_urls_become_feast_connection_strings():
    assert fs._redis_connection("redis://127.0.0.1:6390/2") == "127.0.0.1:6390,db=2"
    assert (
        fs._redis_connection("rediss://:secret@cache:6380") == "cache:6380,password=secret,ssl=true"
    )
    assert fs._redis_connection("localhost:6379") == "localhost:6379"


def test_load_day_serves_that_nights_snapshot_and_nothing_later(repo, snapshots):
    """Entities with a row by midnight get it; those first seen later get an empty row."""
    store, rows = repo["store"], snapshots["customer"]
    for day in (rows["snapshot_ts"].min(), rows["snapshot_ts"].max()):  # some unseen / none
        written = fs.load_day(store, rows, snapshots["merchant"], day)
        assert written["customer_snapshot"] == rows["customer_id"].nunique()
        ids = rows["customer_id"].unique()[:200]
        online = fs.read_online(store, "customer_snapshot", "customer_id", ids)
        known = fs.latest_rows(rows[rows["snapshot_ts"] <= day], "customer_id")
        expected = pd.Series(ids).map(known.set_index("customer_id")["tx_count_30d"]).fillna(0)
        np.testing.assert_array_equal(online["tx_count_30d"].to_numpy(), expected.to_numpy())
