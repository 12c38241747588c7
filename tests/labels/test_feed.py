"""The labels feed's rule: latest report wins, conflicts and strangers quarantined, and a
label used only from its report on (merchant windows, training, monitoring)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from payments_ml.labels import feed
from payments_ml.monitoring import quality as qu


def T(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


TRANSACTIONS = pd.DataFrame(
    {
        "transaction_id": ["a", "b", "c", "d", "e"],
        "merchant_id": [1, 1, 2, 2, 3],
        "event_timestamp": [T("2025-01-01 10:00")] * 5,
    }
)


def _reports(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=feed.FEED_COLUMNS)


@pytest.fixture
def resolved() -> tuple[pd.DataFrame, pd.DataFrame]:
    reports = _reports(
        ("a", True, T("2025-01-05"), "chargeback"),
        ("a", True, T("2025-01-05"), "chargeback"),  # the same report twice: one
        ("a", False, T("2025-01-09"), "analyst"),  # a later contradicting verdict wins
        ("b", True, T("2025-01-03"), "chargeback"),
        ("b", True, T("2025-01-04"), "analyst"),  # the same verdict again: known from the first
        ("c", True, T("2025-01-03"), "issuer"),
        ("c", False, T("2025-01-03"), "analyst"),  # contradiction at one instant: no winner
        ("z", True, T("2025-01-03"), "chargeback"),  # not a transaction of ours
        ("d", True, T("2024-12-31"), "chargeback"),  # before the transaction
        ("e", None, T("2025-01-03"), "chargeback"),
    )
    return feed.resolve(reports, TRANSACTIONS)


def test_the_latest_verdict_wins_from_its_first_report(resolved):
    labels, _ = resolved
    by_id = labels.set_index("transaction_id")
    assert list(by_id.index) == ["a", "b"]
    assert not by_id.at["a", "is_fraud"] and by_id.at["a", "label_available_at"] == T("2025-01-09")
    assert by_id.at["b", "is_fraud"] and by_id.at["b", "label_available_at"] == T("2025-01-03")
    assert by_id.at["b", "source"] == "chargeback" and by_id.at["b", "merchant_id"] == 1


def test_reports_not_in_effect_are_quarantined_with_their_reason(resolved):
    _, quarantine = resolved
    reasons = quarantine.groupby("transaction_id")[feed.QUARANTINE_REASON].apply(list).to_dict()
    assert reasons["a"] == [
        "superseded by a later contradicting report; in effect: genuine from "
        "2025-01-09T00:00:00+00:00 (analyst)"
    ]
    assert (
        reasons["c"]
        == ["contradicts another report of the same transaction at the same instant"] * 2
    )
    assert reasons["z"] == ["unknown transaction_id: not in raw_transactions"]
    assert reasons["d"] == ["reported before the transaction's event_timestamp"]
    assert reasons["e"] == ["missing is_fraud"]
    assert "b" not in reasons
    assert (quarantine["report_date"] == quarantine["reported_at"].dt.strftime("%Y-%m-%d")).all()


def test_a_merchant_fraud_counts_only_if_reported_by_the_first_snapshot_using_its_day():
    """Day k enters the merchant windows at the snapshot of k + d + 1 (midnight): a report
    at that instant counts, one a nanosecond later never does (the snapshot is written)."""
    day_start = T("2025-01-01")
    cutoff = day_start + pd.Timedelta(days=7 + 1)
    labels = pd.DataFrame(
        {
            "transaction_id": ["in", "late", "genuine"],
            "is_fraud": [True, True, False],
            "label_available_at": [cutoff, cutoff + pd.Timedelta(1, "ns"), day_start],
            "source": "chargeback",
            "merchant_id": [1, 2, 3],
            "event_timestamp": [day_start + pd.Timedelta(hours=3)] * 3,
        }
    )
    counts = feed.merchant_fraud_days(labels, label_delay_days=7)
    assert counts.to_dict("records") == [
        {"merchant_id": 1, "day": day_start.value // feed.NS_DAY, "fraud_count": 1}
    ]


def test_monitoring_counts_a_fraud_only_once_its_label_is_available():
    block = pa.table(
        {
            "transaction_id": ["x", "y", "z"],
            "event_timestamp": pa.array(
                [T("2025-01-01 10:00").to_pydatetime()] * 3, pa.timestamp("ns", tz="UTC")
            ),
            "customer_id": [1, 2, 3],
            "card_id": [1, 2, 3],
            "merchant_id": [1, 1, 1],
            "amount": [5.0, 6.0, 7.0],
            "is_fraud": [True, False, False],
            "fraud_scenario": ["x", None, None],
            "label_available_at": pa.array(
                [T("2025-01-03").to_pydatetime()] * 3, pa.timestamp("ns", tz="UTC")
            ),
        }
    )
    labels = pa.table(
        {
            "transaction_id": ["y"],
            "is_fraud": [True],
            "label_available_at": pa.array(
                [T("2025-01-05").to_pydatetime()], pa.timestamp("ns", tz="UTC")
            ),
        }
    )

    def frauds(as_of: str, with_feed: bool) -> int:
        partial = qu.day_partials(
            block,
            quarantined=False,
            edges=np.array([1.0]),
            as_of_ns=T(as_of).value,
            labels=labels if with_feed else None,
        )
        return int(partial["frauds"][0].as_py())

    assert frauds("2025-01-02", with_feed=False) == 0  # reported on the 3rd
    assert frauds("2025-01-04", with_feed=False) == 1
    assert frauds("2025-01-04", with_feed=True) == 0  # the feed: y, reported on the 5th
    assert frauds("2025-01-06", with_feed=True) == 1
