"""Point-in-time correctness of the window features, at their edges and on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from payments_ml.features import windows as fw
from payments_ml.features.definitions import FEATURES, TRAINING_SET_COLUMNS
from tests.features.reference import reference_features

D = pd.Timestamp("2025-06-11", tz="UTC")  # the day of the scored transactions (a Wednesday)
DELAY = 7


def _tx(rows: list[tuple]) -> pd.DataFrame:
    """(customer, timestamp, amount[, merchant, is_fraud, label delay]) -> contract rows."""
    frame = pd.DataFrame(
        [(*r, *(10, False, pd.Timedelta(days=7))[len(r) - 3 :]) for r in rows],
        columns=["customer_id", "event_timestamp", "amount", "merchant_id", "is_fraud", "delay"],
    )
    frame["transaction_id"] = [f"t{i}" for i in range(len(frame))]
    frame["card_id"] = frame["customer_id"] + 1000
    frame["label_available_at"] = frame["event_timestamp"] + frame.pop("delay")
    return frame


def _features(tx: pd.DataFrame) -> pd.DataFrame:
    merchants = fw.merchant_daily(tx, DELAY)
    return fw.feature_rows(tx, merchants, DELAY).set_index("transaction_id")


def test_day_windows_start_at_midnight_w_days_before(  # [D - w days, t)
):
    tx = _tx(
        [
            (1, D - pd.Timedelta(days=30), 1.0),  # first instant of the 30 d window: in
            (1, D - pd.Timedelta(days=30, microseconds=1), 100.0),  # a hair before: out
            (1, D - pd.Timedelta(days=7), 2.0),  # first instant of the 7 d window
            (1, D - pd.Timedelta(days=1), 4.0),  # first instant of the 1 d window
            (1, D - pd.Timedelta(microseconds=1), 8.0),  # last instant before midnight
            (1, D + pd.Timedelta(hours=10), 16.0),  # earlier today
            (1, D + pd.Timedelta(hours=12), 32.0),  # the scored one
        ]
    )
    f = _features(tx).loc["t6"]
    assert f["customer_tx_count_30d"] == 5 and f["customer_amount_sum_30d"] == 31.0
    assert f["customer_tx_count_7d"] == 4 and f["customer_amount_sum_7d"] == 30.0
    assert f["customer_tx_count_1d"] == 3 and f["customer_amount_sum_1d"] == 28.0
    assert f["customer_amount_avg_1d"] == pytest.approx(28.0 / 3)
    assert f["amount_to_customer_avg_30d"] == pytest.approx(32.0 / (31.0 / 5))
    assert f["seconds_since_last_customer_tx"] == 2 * 3600


def test_transactions_at_the_same_instant_never_see_each_other():
    t = D + pd.Timedelta(hours=9)
    tx = _tx([(1, t, 5.0), (1, t, 6.0), (1, t, 7.0), (1, t + pd.Timedelta(seconds=1), 1.0)])
    f = _features(tx)
    for tid in ("t0", "t1", "t2"):
        assert f.loc[tid, "customer_tx_count_1d"] == 0
        assert f.loc[tid, "customer_tx_count_1h"] == 0
        assert np.isnan(f.loc[tid, "seconds_since_last_customer_tx"])
    assert (
        f.loc["t3", "customer_tx_count_1d"] == 3 and f.loc["t3", "customer_amount_sum_1d"] == 18.0
    )
    assert f.loc["t3", "customer_tx_count_1h"] == 3
    assert f.loc["t3", "seconds_since_last_customer_tx"] == 1.0


def test_a_customers_first_transaction_has_empty_windows():
    f = _features(_tx([(7, D + pd.Timedelta(hours=3), 12.5)])).loc["t0"]
    for w in (1, 7, 30):
        assert f[f"customer_tx_count_{w}d"] == 0 and f[f"customer_amount_sum_{w}d"] == 0.0
        assert np.isnan(f[f"customer_amount_avg_{w}d"])
    assert f["customer_tx_count_1h"] == 0
    assert np.isnan(f["seconds_since_last_customer_tx"])
    assert np.isnan(f["amount_to_customer_avg_30d"])
    assert f["hour_of_day"] == 3 and f["is_night"] and not f["is_weekend"]


def test_the_one_hour_window_reaches_back_over_midnight():
    tx = _tx(
        [
            (1, D - pd.Timedelta(minutes=30), 1.0),  # 23:30 yesterday
            (1, D - pd.Timedelta(minutes=15), 1.0),  # 23:45 yesterday
            (1, D + pd.Timedelta(minutes=10), 1.0),  # 00:10 today
            (1, D + pd.Timedelta(minutes=30), 1.0),  # 00:30: sees 23:30 (exactly t - 1 h) on
            (
                1,
                D + pd.Timedelta(minutes=45, microseconds=1),
                1.0,
            ),  # sees 23:45? no: 23:45 < t - 1 h
        ]
    )
    f = _features(tx)
    assert f.loc["t3", "customer_tx_count_1h"] == 3
    assert f.loc["t4", "customer_tx_count_1h"] == 2  # 00:10 and 00:30
    assert f.loc["t2", "customer_tx_count_1h"] == 2
    assert f.loc["t3", "customer_tx_count_1d"] == 3  # 1 d: yesterday's two and 00:10


def test_merchant_windows_end_label_delay_days_before_midnight():
    day = pd.Timedelta(days=1)
    tx = _tx(
        [
            (1, D - (DELAY + 1) * day, 1.0, 10, True, pd.Timedelta(days=2)),  # in the 1 d window
            (2, D - DELAY * day, 1.0, 10, True, pd.Timedelta(hours=1)),  # day D - d: too recent
            (3, D - (DELAY + 1) * day + pd.Timedelta(hours=5), 1.0, 10, False),
            (4, D - (DELAY + 3) * day, 1.0, 10, True, pd.Timedelta(days=40)),  # reported too late
            (5, D - (DELAY + 31) * day, 1.0, 10, True, pd.Timedelta(days=1)),  # out of 30 d
            (6, D + pd.Timedelta(hours=8), 1.0, 10, False),  # the scored one
        ]
    )
    f = _features(tx).loc["t5"]
    assert f["merchant_tx_count_1d"] == 2 and f["merchant_fraud_rate_1d"] == 0.5
    assert f["merchant_tx_count_7d"] == 3 and f["merchant_fraud_rate_7d"] == pytest.approx(1 / 3)
    assert f["merchant_tx_count_30d"] == 3
    empty = _features(_tx([(6, D, 1.0, 99, False)])).loc["t0"]
    assert empty["merchant_tx_count_30d"] == 0 and empty["merchant_fraud_rate_30d"] == 0.0


def test_weekend_and_night_flags():
    saturday_night = pd.Timestamp("2025-06-14 05:59:59", tz="UTC")
    f = _features(_tx([(1, saturday_night, 3.0)])).loc["t0"]
    assert f["is_weekend"] and f["is_night"] and f["hour_of_day"] == 5
    monday_morning = pd.Timestamp("2025-06-16 06:00:00", tz="UTC")
    f = _features(_tx([(1, monday_morning, 3.0)])).loc["t0"]
    assert not f["is_weekend"] and not f["is_night"]


def test_rows_hold_the_model_input_columns_in_input_order():
    tx = _tx([(2, D + pd.Timedelta(hours=h), 1.0) for h in (5, 1, 3)])
    rows = fw.feature_rows(tx, fw.merchant_daily(tx, DELAY), DELAY)
    assert list(rows.columns) == TRAINING_SET_COLUMNS
    assert list(rows["transaction_id"]) == ["t0", "t1", "t2"]


def test_vectorised_features_equal_the_pandas_reference(generated_transactions):
    generated = generated_transactions
    ours = _features(generated)
    expected = reference_features(generated, DELAY)
    assert len(ours) == len(generated) > 10_000
    # The data exercises every path: fraud at merchants, bursts, history across midnight.
    assert (ours["merchant_fraud_rate_30d"] > 0).mean() > 0.05
    assert (ours["customer_tx_count_1h"] > 0).mean() > 0.01
    assert ours["seconds_since_last_customer_tx"].notna().mean() > 0.9
    pd.testing.assert_frame_equal(
        ours[FEATURES].astype(float),
        expected.loc[ours.index, FEATURES].astype(float),
        rtol=1e-9,
        atol=1e-9,
    )


def test_snapshot_rows_give_the_snapshot_of_any_day_by_point_in_time_lookup(generated_transactions):
    generated = generated_transactions
    daily = fw.customer_daily(generated)
    rows = fw.customer_snapshot_rows(daily)
    ns = fw.to_ns(generated["event_timestamp"])
    cust, day = generated["customer_id"].to_numpy(), fw.day_of(ns)
    direct = fw.customer_snapshot(daily, cust, day)
    # Point-in-time join as Feast does it: the latest row at or before t.
    lookup = pd.merge_asof(
        pd.DataFrame(
            {
                "customer_id": cust,
                "t": generated["event_timestamp"].to_numpy(),
                "i": range(len(cust)),
            }
        ).sort_values("t"),
        rows.rename(columns={"snapshot_ts": "t"}).sort_values("t"),
        on="t",
        by="customer_id",
    ).sort_values("i")
    for column in ("tx_count_1d", "tx_count_7d", "tx_count_30d", "amount_sum_30d"):
        looked_up = lookup[column].fillna(0).to_numpy()
        np.testing.assert_allclose(looked_up, direct[column].to_numpy(), rtol=1e-9)
    assert len(rows) < 5 * len(daily)


def test_request_sized_code_paths_give_the_same_bits(generated_transactions, monkeypatch):
    """Live requests skip pandas below windows._SMALL rows: the values must not change."""
    tx = generated_transactions.head(200).reset_index(drop=True)
    merchants = fw.merchant_daily(tx, DELAY)
    monkeypatch.setattr(fw, "_SMALL", 10**9)  # every call through the request-sized paths
    fast = fw.feature_rows(tx, merchants, DELAY)
    monkeypatch.setattr(fw, "_SMALL", -1)  # every call through pandas
    slow = fw.feature_rows(tx, merchants, DELAY)
    pd.testing.assert_frame_equal(fast, slow, check_exact=True)
    unknown = fw._Keys(np.array([5, 9]), days=[np.array([100])])
    monkeypatch.setattr(fw, "_SMALL", 256)
    assert unknown(np.array([9, 7, 5]), np.array([100, 100, 100]))[1] < 0  # not in the ranking


def _with_a_burst(tx: pd.DataFrame) -> pd.DataFrame:
    """``tx`` plus one customer's 360 transactions in 90 minutes across midnight, three at
    each instant 45 s apart: the last hour holds more rows than a few gallops back reach,
    and it starts exactly at an earlier instant (in: the window is [t - 1 h, t))."""
    start = D - pd.Timedelta(minutes=45)
    times = [start + pd.Timedelta(seconds=45 * (i // 3)) for i in range(360)]
    burst = _tx([(10**6, t, 1.0 + i / 8) for i, t in enumerate(times)])
    burst["transaction_id"] = [f"b{i}" for i in range(len(burst))]
    return pd.concat([tx[burst.columns], burst], ignore_index=True)


def _request_path(tx: pd.DataFrame, daily: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the scorer computes for each transaction: the snapshot of its day, plus the
    customer's transactions of that day as today's part (merged as request streams)."""
    cust = tx["customer_id"].to_numpy(np.int64)
    ns, amount = fw.to_ns(tx["event_timestamp"]), tx["amount"].to_numpy(float)
    snapshot = fw.customer_snapshot_columns(daily, cust, fw.day_of(ns))
    return fw.customer_window_columns(cust, ns, snapshot, (cust, ns, amount))


@pytest.mark.parametrize("from_day", [None, 0, 9])
def test_training_rows_equal_the_request_path_bit_for_bit(generated_transactions, from_day):
    """The training rows read today's part off the sorted history; a request merges it
    from a stream. Same numbers, to the last bit (from_day: a night's rows only)."""
    tx = _with_a_burst(generated_transactions.sample(frac=1.0, random_state=0))
    history = fw.sorted_history(tx)
    daily = fw.customer_daily(tx, history)
    first = int(fw.day_of(fw.to_ns(tx["event_timestamp"])).min())
    night = None if from_day is None else first + from_day
    ours = fw.history_customer_columns(history, daily, night)
    requests = tx if night is None else tx[fw.day_of(fw.to_ns(tx["event_timestamp"])) >= night]
    cust, ns = requests["customer_id"].to_numpy(np.int64), fw.to_ns(requests["event_timestamp"])
    snapshot = fw.customer_snapshot_columns(daily, cust, fw.day_of(ns))
    everyone = (tx["customer_id"].to_numpy(np.int64), fw.to_ns(tx["event_timestamp"]), tx["amount"])
    theirs = fw.customer_window_columns(cust, ns, snapshot, everyone)
    assert sorted(ours) == sorted(theirs) and len(ours["customer_tx_count_1h"]) == len(requests)
    for name, values in theirs.items():
        np.testing.assert_array_equal(ours[name], values, err_msg=name)
    assert ours["customer_tx_count_1h"].max() >= 60  # the burst: many rows in the last hour
