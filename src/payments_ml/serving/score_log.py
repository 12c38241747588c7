"""The scorer's log: every scored transaction, its features and its answer, as Parquet.

Monitoring reads it for score drift and train/serve skew. Layout, under
``paths.scored_transactions``: ``event_date=YYYY-MM-DD/scored-<first>-<last>.parquet``
with the request columns, ``fraud_probability``, ``decision``, ``model_version``,
``scored_at`` and every feature.

Exactly once, whatever crashes. A scored batch's new transactions (a retried
transaction is not new) are encoded as one outbox record (`encode_record`) that the
online-store backend writes in the same transaction as their ``customer_today``
append, before the answer leaves: an answered transaction is durable, and logged once.
A `ScoreLog` thread in every replica moves outbox records to Parquet every
``flush_seconds``: it claims the oldest records (one claim at a time across replicas,
with a lease), writes one file per day named after the claimed record ids, then deletes
the records. A compactor that dies mid-way leaves its claim; when the lease runs out
another one (or the restarted replica) redoes the same claim and rewrites the same
files, so nothing is lost or written twice.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from payments_ml.feature_store.backends import Outbox

logger = logging.getLogger(__name__)

_MAGIC = b"PMLS1"
_INTS = ("event_ns", "customer_id", "card_id", "merchant_id")


def encode_record(
    batch: Mapping[str, np.ndarray],
    rows: Sequence[int],
    *,
    features: np.ndarray,
    names: Sequence[str],
    probability: np.ndarray,
    decisions: Sequence[str],
    model_version: str,
) -> bytes:
    """The outbox record of some rows of a scored batch (cheap: no Arrow, no pandas).

    Args:
        batch: The request arrays (``transaction_id``, ``event_ns``, ids, ``amount``).
        rows: Which requests to log.
        features: The model input, one row per request, columns in ``names`` order.
        names: The feature names.
        probability: Each request's fraud probability.
        decisions: Each request's decision.
        model_version: The model that scored them.
    """
    rows = list(rows)
    ints = [name for name in _INTS if name in batch]
    header = {
        "ints": ints,
        "floats": ["amount", "fraud_probability", *names],
        "transaction_id": [batch["transaction_id"][i] for i in rows],
        "decision": [decisions[i] for i in rows],
        "model_version": model_version,
        "scored_at": time.time_ns(),
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    int_matrix = np.column_stack([np.asarray(batch[n], np.int64)[rows] for n in ints])
    float_matrix = np.column_stack(
        [np.asarray(batch["amount"], float)[rows], np.asarray(probability, float)[rows]]
        + [np.asarray(features, float)[rows]]
    )
    return b"".join(
        (
            _MAGIC,
            struct.pack("<II", len(head), len(rows)),
            head,
            int_matrix.astype("<i8").tobytes(),
            float_matrix.astype("<f8").tobytes(),
        )
    )


def decode_records(records: Sequence[bytes]) -> pa.Table:
    """One Arrow table (with ``event_date``) of outbox records."""
    # A new model version may log other features: their columns are null elsewhere.
    tables = [_decode(r) for r in records]
    return pa.concat_tables(tables, promote_options="default").combine_chunks()


def _decode(record: bytes) -> pa.Table:
    if not record.startswith(_MAGIC):
        raise ValueError("not a scored-transaction outbox record")
    offset = len(_MAGIC)
    size, n = struct.unpack_from("<II", record, offset)
    offset += 8
    header = json.loads(record[offset : offset + size])
    offset += size
    ints, floats = header["ints"], header["floats"]
    int_matrix = np.frombuffer(record, "<i8", n * len(ints), offset).reshape(n, len(ints))
    offset += 8 * n * len(ints)
    float_matrix = np.frombuffer(record, "<f8", n * len(floats), offset).reshape(n, len(floats))
    event_ns = int_matrix[:, ints.index("event_ns")]
    columns: dict[str, Any] = {
        "transaction_id": pa.array(header["transaction_id"], pa.string()),
        "event_timestamp": pa.array(event_ns, pa.timestamp("ns", tz="UTC")),
    }
    for j, name in enumerate(ints):
        if name != "event_ns":
            columns[name] = pa.array(int_matrix[:, j])
    columns["amount"] = pa.array(float_matrix[:, 0])
    columns["fraud_probability"] = pa.array(float_matrix[:, 1])
    columns["decision"] = pa.array(header["decision"], pa.string())
    columns["model_version"] = pa.array([header["model_version"]] * n, pa.string())
    columns["scored_at"] = pa.array(
        np.full(n, header["scored_at"], np.int64), pa.timestamp("ns", tz="UTC")
    )
    for j, name in enumerate(floats[2:], start=2):
        columns[name] = pa.array(float_matrix[:, j])
    days = (event_ns // 86_400_000_000_000).astype("datetime64[D]").astype(str)
    columns["event_date"] = pa.array(days.tolist(), pa.string())
    return pa.table(columns)


class ScoreLog:
    """Moves outbox records to the Parquet log, in a background thread.

    Args:
        outbox: The online store's outbox (its own connection), or a function that
            opens it (called again at each flush until it succeeds).
        path: Folder (local path or a URI pyarrow understands, e.g. ``s3://bucket/x``).
        flush_seconds: How often the thread writes what is waiting.
        max_records: Records per claim (one claim, one file per day).
        lease_s: How long a claim is this log's before another may redo it.
    """

    def __init__(
        self,
        outbox: Outbox | Callable[[], Outbox],
        path: str,
        flush_seconds: float = 5.0,
        max_records: int = 2_000,
        lease_s: float = 30.0,
    ) -> None:
        self.outbox = outbox
        self.path = path
        self.flush_seconds = flush_seconds
        self.max_records = max_records
        self.lease_s = lease_s
        self.owner = f"scorer-{uuid.uuid4().hex[:12]}"
        self.written = 0
        self.failures = 0
        self._fs, self._root = pafs.FileSystem.from_uri(_uri(path))
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="score-log", daemon=True)
        self._thread.start()

    def flush(self) -> int:
        """Write every waiting record; the rows written (0 when a write failed: the
        records stay in the outbox for the next attempt)."""
        written = 0
        with self._flushing:
            while True:
                try:
                    outbox = self._outbox()
                    claim = outbox.claim(self.owner, self.max_records, self.lease_s)
                    if claim is None:
                        return written
                    table = decode_records(claim.records)
                    self._write(table, claim.name)
                    outbox.complete(claim)
                except Exception as error:  # retried at the next flush
                    self.failures += 1
                    logger.warning(
                        "Could not move scored transactions to %s (will retry): %s",
                        self.path,
                        error,
                    )
                    return written
                written += table.num_rows
                self.written += table.num_rows

    def _write(self, table: pa.Table, name: str) -> None:
        """One file per day, written under a hidden name then renamed: a file is whole."""
        for day in pc.unique(table["event_date"]).to_pylist():
            rows = table.filter(pc.equal(table["event_date"], day)).drop_columns("event_date")
            folder = f"{self._root}/event_date={day}"
            self._fs.create_dir(folder, recursive=True)
            final, hidden = f"{folder}/scored-{name}.parquet", f"{folder}/.scored-{name}.tmp"
            with self._fs.open_output_stream(hidden) as out:
                pq.write_table(rows, out)
            self._fs.move(hidden, final)

    def _outbox(self) -> Outbox:
        return self.outbox() if callable(self.outbox) else self.outbox

    def close(self) -> None:
        """Stop the thread and write what is waiting."""
        self._stop.set()
        self._thread.join(timeout=self.flush_seconds + 30)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()


def _uri(path: str) -> str:
    if "://" in path:
        return path
    from pathlib import Path  # noqa: PLC0415

    return Path(path).resolve().as_uri()
