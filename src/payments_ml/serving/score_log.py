"""The scorer's log: every scored transaction, its features and its answer, as Parquet.

Monitoring reads it for score drift and train/serve skew (DESIGN.md: the scorer logs what
it scored, with features, to the offline store). Layout, under ``paths.scored_transactions``:
``event_date=YYYY-MM-DD/part-<replica>-<n>.parquet`` with the request columns,
``fraud_probability``, ``decision``, ``model_version``, ``scored_at`` and every feature.

Rows are buffered and written by a background thread every ``flush_seconds`` (and at
shutdown), so a request never waits for the file system. A write that fails keeps its
rows for the next attempt (up to ``max_buffered_rows``, then the oldest are dropped and
counted), and is logged: scoring never fails because the log cannot be written.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

# Imported with the module (at replica start): its first import takes ~0.3 s, which in the
# first flush would stall the requests in flight.
import pyarrow.dataset as ds

logger = logging.getLogger(__name__)

_KEYS = ("transaction_id", "customer_id", "card_id", "merchant_id", "amount")


class ScoreLog:
    """Buffers scored batches and appends them to a Hive-partitioned Parquet dataset.

    Args:
        path: Folder (local path or a URI pyarrow understands, e.g. ``s3://bucket/x``).
        flush_seconds: How often the background thread writes what is buffered.
        max_buffered_rows: Rows kept while writes fail; beyond it the oldest are dropped.
    """

    def __init__(
        self, path: str, flush_seconds: float = 5.0, max_buffered_rows: int = 1_000_000
    ) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self.max_buffered_rows = max_buffered_rows
        self.written = 0
        self.dropped = 0
        self._prefix = f"part-{uuid.uuid4().hex[:12]}"
        self._files = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="score-log", daemon=True)
        self._thread.start()

    def add(
        self,
        batch: Mapping[str, np.ndarray],
        features: Mapping[str, np.ndarray],
        probability: np.ndarray,
        decisions: Sequence[str],
        model_version: str,
    ) -> None:
        """Buffer one scored batch. Cheap: the arrays are kept as they are and turned
        into Arrow by the background thread, many batches at once."""
        entry = (batch, features, probability, decisions, model_version, time.time_ns())
        with self._lock:
            self._buffer.append(entry)
            self._buffered += len(probability)
            while self._buffered > self.max_buffered_rows and len(self._buffer) > 1:
                oldest = self._buffer.pop(0)
                self._buffered -= _rows(oldest)
                self.dropped += _rows(oldest)

    def flush(self) -> int:
        """Write what is buffered now; returns the rows written (0 when a write failed)."""
        with self._flushing:
            with self._lock:
                entries, self._buffer, self._buffered = self._buffer, [], 0
            if not entries:
                return 0
            try:
                table = _table(entries)
                ds.write_dataset(
                    table,
                    self.path,
                    format="parquet",
                    partitioning=ds.partitioning(
                        pa.schema([("event_date", pa.string())]), flavor="hive"
                    ),
                    basename_template=f"{self._prefix}-{self._files}-{{i}}.parquet",
                    existing_data_behavior="overwrite_or_ignore",
                )
            except Exception as error:  # keep the rows for the next attempt
                rows = sum(_rows(e) for e in entries)
                logger.warning(
                    "Could not write %d scored transactions to %s (will retry): %s",
                    rows,
                    self.path,
                    error,
                )
                with self._lock:
                    self._buffer[:0] = entries
                    self._buffered += rows
                return 0
            self._files += 1
            self.written += table.num_rows
            return table.num_rows

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        self._stop.set()
        self._thread.join(timeout=self.flush_seconds + 30)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()


def _rows(entry: tuple) -> int:
    return len(entry[2])


def _table(entries: list[tuple]) -> pa.Table:
    """One Arrow table of buffered (batch, features, probability, decisions, version,
    scored_at) entries."""

    def cat(values: list, dtype: Any = None) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype) for v in values])

    batches = [e[0] for e in entries]
    event_ns = cat([b["event_ns"] for b in batches], np.int64)
    ids = cat([b["transaction_id"] for b in batches], object)
    columns: dict[str, Any] = {
        "transaction_id": pa.array(ids, pa.string()),
        "event_timestamp": pa.array(event_ns, pa.timestamp("ns", tz="UTC")),
    }
    for name in _KEYS[1:]:
        if all(name in b for b in batches):
            columns[name] = cat([b[name] for b in batches])
    columns["fraud_probability"] = cat([e[2] for e in entries], float)
    columns["decision"] = pa.array(cat([e[3] for e in entries], object), pa.string())
    columns["model_version"] = pa.array(
        np.repeat([e[4] for e in entries], [_rows(e) for e in entries]).tolist(), pa.string()
    )
    scored_at = np.repeat([e[5] for e in entries], [_rows(e) for e in entries])
    columns["scored_at"] = pa.array(scored_at.astype(np.int64), pa.timestamp("ns", tz="UTC"))
    for name in entries[0][1]:
        columns[name] = cat([e[1][name] for e in entries], float)
    days = (event_ns // 86_400_000_000_000).astype("datetime64[D]").astype(str)
    columns["event_date"] = pa.array(days.tolist(), pa.string())
    return pa.table(columns)
