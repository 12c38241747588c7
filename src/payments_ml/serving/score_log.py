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

    Layout: magic, header length and row count, a JSON header (column names, ids,
    decisions, model version, time), then each int64 column and each float64 column,
    little-endian, one after the other.

    Args:
        batch: The request arrays (``transaction_id``, ``event_ns``, ids, ``amount``).
        rows: Which requests to log.
        features: The model input, one row per request, columns in ``names`` order.
        names: The feature names.
        probability: Each request's fraud probability.
        decisions: Each request's decision.
        model_version: The model that scored them.
    """
    rows = np.asarray(rows, np.int64)
    picked = rows.tolist()
    ints = [name for name in _INTS if name in batch]
    header = {
        "ints": ints,
        "floats": ["amount", "fraud_probability", *names],
        "transaction_id": [batch["transaction_id"][i] for i in picked],
        "decision": [decisions[i] for i in picked],
        "model_version": model_version,
        "scored_at": time.time_ns(),
    }
    head = json.dumps(header, separators=(",", ":")).encode()
    parts = [_MAGIC, struct.pack("<II", len(head), len(rows)), head]
    parts += [np.asarray(batch[n], "<i8")[rows].tobytes() for n in ints]
    parts.append(np.asarray(batch["amount"], "<f8")[rows].tobytes())
    parts.append(np.asarray(probability, "<f8")[rows].tobytes())
    parts.append(np.asarray(features, "<f8")[rows].T.tobytes())  # column after column
    return b"".join(parts)


def decode_records(records: Sequence[bytes]) -> pa.Table:
    """One Arrow table (with ``event_date``) of outbox records, decoded together."""
    groups: dict[tuple, list[tuple[dict, np.ndarray, np.ndarray]]] = {}
    for record in records:
        header, ints, floats = _decode(record)
        groups.setdefault((tuple(header["ints"]), tuple(header["floats"])), []).append(
            (header, ints, floats)
        )
    # A new model version may log other features: their columns are null elsewhere.
    tables = [_table(key, parts) for key, parts in groups.items()]
    return pa.concat_tables(tables, promote_options="default").combine_chunks()


def _decode(record: bytes) -> tuple[dict, np.ndarray, np.ndarray]:
    if not record.startswith(_MAGIC):
        raise ValueError("not a scored-transaction outbox record")
    offset = len(_MAGIC)
    size, n = struct.unpack_from("<II", record, offset)
    offset += 8
    header = json.loads(record[offset : offset + size])
    offset += size
    n_ints, n_floats = len(header["ints"]), len(header["floats"])
    ints = np.frombuffer(record, "<i8", n * n_ints, offset).reshape(n_ints, n)
    offset += 8 * n * n_ints
    floats = np.frombuffer(record, "<f8", n * n_floats, offset).reshape(n_floats, n)
    return header, ints, floats


def _table(names: tuple, parts: list[tuple[dict, np.ndarray, np.ndarray]]) -> pa.Table:
    int_names, float_names = names
    ints = np.concatenate([p[1] for p in parts], axis=1)
    floats = np.concatenate([p[2] for p in parts], axis=1)
    sizes = [p[1].shape[1] for p in parts]
    headers = [p[0] for p in parts]
    event_ns = ints[int_names.index("event_ns")]
    columns: dict[str, Any] = {
        "transaction_id": pa.array([t for h in headers for t in h["transaction_id"]], pa.string()),
        "event_timestamp": pa.array(event_ns, pa.timestamp("ns", tz="UTC")),
    }
    for j, name in enumerate(int_names):
        if name != "event_ns":
            columns[name] = pa.array(ints[j])
    columns["amount"] = pa.array(floats[0])
    columns["fraud_probability"] = pa.array(floats[1])
    columns["decision"] = pa.array([d for h in headers for d in h["decision"]], pa.string())
    columns["model_version"] = pa.array(
        np.repeat([h["model_version"] for h in headers], sizes).tolist(), pa.string()
    )
    scored_at = np.repeat(np.array([h["scored_at"] for h in headers], np.int64), sizes)
    columns["scored_at"] = pa.array(scored_at, pa.timestamp("ns", tz="UTC"))
    for j, name in enumerate(float_names[2:], start=2):
        columns[name] = pa.array(floats[j])
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
        _warm_up()  # first-use costs now, at replica start, not mid-traffic
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
        """One file per day, written under a hidden name then renamed: a file is whole.

        Days are split with numpy and slices, not pyarrow.compute: its first call takes
        0.3 s of initialisation under the GIL, which stalled the requests in flight."""
        dates = np.asarray(table["event_date"].to_pylist(), object)
        order = np.argsort(dates, kind="stable")
        table, dates = table.take(pa.array(order)), dates[order]
        days, starts = np.unique(dates, return_index=True)
        ends = [*starts[1:].tolist(), len(dates)]
        for day, start, end in zip(days.tolist(), starts.tolist(), ends, strict=True):
            rows = table.slice(start, end - start).drop_columns("event_date")
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


def _warm_up() -> None:
    """Encode, decode and write (to memory) one record: whatever Arrow and Parquet
    initialise on first use happens here, not in a flush while requests wait."""
    one = np.ones(1)
    batch = {"transaction_id": np.array(["warm-up"], object), "event_ns": np.zeros(1, np.int64)}
    batch |= {"customer_id": one.astype(np.int64), "amount": one}
    record = encode_record(
        batch,
        [0],
        features=one.reshape(1, 1),
        names=["x"],
        probability=one,
        decisions=["approve"],
        model_version="0",
    )
    pq.write_table(decode_records([record]), pa.BufferOutputStream())


def _uri(path: str) -> str:
    if "://" in path:
        return path
    from pathlib import Path  # noqa: PLC0415

    return Path(path).resolve().as_uri()
