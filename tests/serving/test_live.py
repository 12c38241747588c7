"""The dashboard's live figures and the scorer's Parquet log, without HTTP."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from payments_ml.feature_store.backends.packed_sqlite import SqliteFiles, SqliteOutbox
from payments_ml.feature_store.online_store import connect
from payments_ml.serving.live import LiveStats
from payments_ml.serving.score_log import ScoreLog, encode_record


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_live_stats_summarise_the_last_minute_and_chart_ten():
    clock = _Clock(1_000_000.0)
    stats = LiveStats(horizon_s=600, clock=clock)
    clock.now += 300  # running for 5 minutes
    for second in range(120):  # two minutes of traffic: 2 requests of 1 and 3 ms per second
        clock.now += 1
        stats.observe_request(0.001, status=200)
        stats.observe_request(0.003, status=200 if second % 60 else 422)
        stats.observe_scores(["approve", "decline"], [0.1, 0.9])
    summary = stats.summary(window_s=60, step_s=5)
    assert summary["transactions_per_s"] == 2.0 and summary["requests_per_s"] == 2.0
    assert summary["decisions"] == {"approve": 60, "review": 0, "decline": 60}
    assert summary["expected_fraud_rate"] == 0.5
    assert summary["errors"] == 1 and summary["total_scored"] == 240
    assert summary["latency_ms"]["p50"] == 2.0 and 2.8 < summary["latency_ms"]["p95"] <= 3.0
    series = summary["series"]
    assert len(series["t"]) == 120 and series["t"][-1] <= clock.now
    assert series["tx_per_s"][-24:] == [2.0] * 24  # the last two minutes
    assert series["tx_per_s"][:24] == [0.0] * 24 and series["p50_ms"][0] is None
    clock.now += 1000  # quiet for longer than the horizon: nothing left
    quiet = stats.summary()
    assert quiet["transactions_per_s"] == 0 and quiet["latency_ms"]["p50"] is None
    assert quiet["total_scored"] == 240


def _record(ids: list[str], days: list[str], version: str = "3") -> bytes:
    """The outbox record of a scored batch (as the scorer writes it with its append)."""
    ns = pd.to_datetime(days, utc=True).as_unit("ns").asi8 + 3_600_000_000_000
    n = len(ids)
    batch = {
        "transaction_id": np.array(ids, object),
        "customer_id": np.arange(n, dtype=np.int64),
        "card_id": np.arange(n, dtype=np.int64) + 100,
        "merchant_id": np.full(n, 7, np.int64),
        "amount": np.linspace(1, 2, n),
        "event_ns": ns,
    }
    return encode_record(
        batch,
        range(n),
        features=np.column_stack([np.arange(n, dtype=float), np.ones(n)]),
        names=["customer_tx_count_1d", "hour_of_day"],
        probability=np.linspace(0.1, 0.9, n),
        decisions=(["approve", "review", "decline"] * n)[:n],
        model_version=version,
    )


def _outbox(tmp_path) -> SqliteOutbox:
    path = tmp_path / "outbox.db"
    connect(path, create=True).close()
    return SqliteOutbox(SqliteFiles({"outbox": path}, timeout_s=5.0, outbox="outbox"))


def _put(outbox: SqliteOutbox, *records: bytes) -> None:
    with outbox.files.call("outbox", write=True) as conn:
        conn.executemany("INSERT INTO scored_outbox (record) VALUES (?)", [(r,) for r in records])


def _log(path) -> pd.DataFrame:
    table = ds.dataset(path, partitioning="hive").to_table().to_pandas()
    return table.sort_values("transaction_id", ignore_index=True)


def test_score_log_writes_partitions_by_day_and_keeps_records_when_a_write_fails(tmp_path):
    outbox = _outbox(tmp_path)
    _put(outbox, _record(["a", "b"], ["2025-06-10", "2025-06-10"]), _record(["c"], ["2025-06-11"]))
    log = ScoreLog(outbox, str(tmp_path / "scored"), flush_seconds=3600)
    assert log.flush() == 3 and log.flush() == 0 and outbox.pending() == 0
    days = sorted(p.name for p in (tmp_path / "scored").iterdir())
    assert days == ["event_date=2025-06-10", "event_date=2025-06-11"]
    table = _log(tmp_path / "scored")
    assert table["transaction_id"].tolist() == ["a", "b", "c"]
    assert table["decision"].tolist() == ["approve", "review", "approve"]
    assert table["model_version"].eq("3").all() and table["card_id"].tolist() == [100, 101, 100]
    assert str(table["event_timestamp"].dt.tz) == "UTC" and table["scored_at"].notna().all()
    assert table["customer_tx_count_1d"].tolist() == [0.0, 1.0, 0.0]

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the log's folder should be")
    failing = ScoreLog(outbox, str(blocked), flush_seconds=3600)
    _put(outbox, _record(["d"], ["2025-06-12"]))
    assert failing.flush() == 0 and failing.failures == 1 and outbox.pending() == 1  # kept
    blocked.unlink()
    assert failing.flush() == 1 and failing.written == 1 and outbox.pending() == 0
    failing.close()
    log.close()


def test_score_log_flushes_in_the_background_and_on_close(tmp_path):
    outbox = _outbox(tmp_path)
    log = ScoreLog(outbox, str(tmp_path / "scored"), flush_seconds=0.2)
    _put(outbox, _record(["a"], ["2025-06-10"]))
    deadline = time.monotonic() + 5
    while log.written < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.written == 1
    _put(outbox, _record(["b"], ["2025-06-10"], version="4"))
    log.close()
    assert log.written == 2
    assert len(ds.dataset(tmp_path / "scored", partitioning="hive").to_table()) == 2


def test_a_compactor_dying_mid_move_is_redone_once_by_another(tmp_path, monkeypatch):
    """Files written, records not yet deleted, compactor gone: after the lease, another
    compactor redoes the same claim into the same files. Nothing lost, nothing twice."""
    outbox = _outbox(tmp_path)
    _put(outbox, _record(["a", "b"], ["2025-06-10", "2025-06-11"]), _record(["c"], ["2025-06-10"]))
    dying = ScoreLog(outbox, str(tmp_path / "scored"), flush_seconds=3600, lease_s=0.5)

    def crash(claim) -> None:
        raise RuntimeError("SIGKILL")  # after the Parquet files, before the delete

    monkeypatch.setattr(outbox, "complete", crash)
    assert dying.flush() == 0 and outbox.pending() == 2
    monkeypatch.undo()
    survivor = ScoreLog(_outbox(tmp_path), str(tmp_path / "scored"), flush_seconds=3600)
    assert survivor.flush() == 0  # the dead compactor's lease still runs
    time.sleep(0.6)
    assert survivor.flush() == 3 and outbox.pending() == 0
    assert _log(tmp_path / "scored")["transaction_id"].tolist() == ["a", "b", "c"]
    for log in (dying, survivor):
        log.close()
