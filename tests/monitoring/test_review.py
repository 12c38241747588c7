"""Monitoring's review outcome per day, from the scorer's log and the analysts' reports."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from payments_ml.labels.feed import append_reports, chargebacks
from payments_ml.monitoring.review import review_outcome_by_day


def _log(folder, day: str, rows: list[tuple]) -> None:
    frame = pd.DataFrame(
        rows, columns=["transaction_id", "card_id", "fraud_probability", "decision"]
    ).assign(customer_id=1, scored_at=pd.Timestamp(f"{day}T10:00:00Z"))
    (folder / f"event_date={day}").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame), folder / f"event_date={day}" / "scored-1.parquet")


def test_the_outcome_counts_the_analysts_verdicts_per_day_of_flagged_transactions(tmp_path):
    scored = tmp_path / "scored"
    _log(scored, "2025-06-01", [("a", 1, 0.9, "review"), ("b", 2, 0.5, "review")])
    _log(scored, "2025-06-02", [("c", 3, 0.7, "review"), ("d", 4, 0.2, "approve")])
    at = pd.Timestamp("2025-06-02T10:30:00Z")
    verdicts = pd.DataFrame(
        {"transaction_id": ["a", "b", "b"], "is_fraud": [True, True, False], "source": "analyst"}
    ).assign(reported_at=[at, at, at + pd.Timedelta(hours=1)], analyst="ana")
    append_reports(str(tmp_path / "labels"), verdicts)
    # A chargeback is no analyst verdict: card 3 stays in the queue.
    tx = pd.DataFrame({"transaction_id": ["c"], "is_fraud": [True], "label_available_at": [at]})
    append_reports(str(tmp_path / "labels"), chargebacks(tx, 0, 10**6), prefix="chargeback")

    log = pads.dataset(scored, partitioning="hive")
    feed = pads.dataset(tmp_path / "labels", partitioning="hive")
    first, second = review_outcome_by_day(log, feed, days=7)
    assert (first["day"], first["cards_reviewed"], first["cards_confirmed_fraud"]) == (
        "2025-06-01",
        2,
        1,  # card 2: the later verdict (genuine) supersedes
    )
    assert first["review_precision"] == 0.5 and first["queue_length"] == 0
    assert first["median_minutes_to_verdict"] == 1470.0  # first verdicts, a day and 30 min on
    assert (second["cards_flagged"], second["queue_length"], second["review_precision"]) == (
        1,
        1,
        None,
    )
    assert review_outcome_by_day(log, feed, days=1) == [second]
    assert review_outcome_by_day(None, feed, days=7) == []
