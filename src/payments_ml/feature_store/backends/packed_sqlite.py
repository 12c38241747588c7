"""The packed SQLite online store (embedded default) for the scorer.

Each view is its own database file (`online_store.view_path`). Reads never wait for a
writer (WAL); a write waits at most ``timeout_s`` for another writer's lock (SQLite's
busy timeout), and any statement running past ``timeout_s`` is interrupted (a progress
handler), so no call blocks a replica for longer. A file that disappears (moved aside,
deleted) is reported, never recreated; a file put back is picked up by the next call.

The outbox lives in ``customer_today``'s file: an append and its log record commit in
one transaction.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from feast import FeatureView, RepoConfig

from payments_ml.feature_store.backends import (
    TODAY,
    VIEWS,
    Claim,
    Decide,
    Online,
    OutboxRecord,
    StoreUnavailable,
    aligned,
)
from payments_ml.feature_store.online_store import (
    UPSERT,
    connect,
    decode_record,
    encode_record,
    int64_entity_keys,
    read_records,
    record_layout,
    table_name,
    view_path,
)
from payments_ml.features.today import Entry, merge_today

_OUTBOX_TABLES = (
    "CREATE TABLE IF NOT EXISTS scored_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "record BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scored_outbox_claim (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "first INTEGER NOT NULL, last INTEGER NOT NULL, owner TEXT NOT NULL, lease_until REAL)",
)


class SqliteFiles:
    """One connection per database file, reopened when the file is replaced, refused
    when it is missing; every call runs under a deadline, one call at a time (threads
    of one process share the connections: a web server's thread pool, say).

    Args:
        paths: ``{name: database file}``.
        timeout_s: The longest one call may take.
        outbox: The name whose file holds the outbox tables.
    """

    def __init__(self, paths: Mapping[str, Path], timeout_s: float, outbox: str | None = TODAY):
        self.paths = dict(paths)
        self.timeout_s = timeout_s
        self.outbox = outbox
        self._conns: dict[str, tuple[sqlite3.Connection, tuple[int, int]]] = {}
        self._deadline = math.inf
        self._lock = threading.RLock()

    @contextlib.contextmanager
    def call(self, name: str, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection to view ``name``'s file, for one call of at most ``timeout_s``;
        with ``write``, inside ``BEGIN IMMEDIATE`` ... ``COMMIT``."""
        path = self.paths[name]
        if not self._lock.acquire(timeout=self.timeout_s):
            raise StoreUnavailable(
                f"the online store file {path} is busy in this process for over {self.timeout_s} s"
            )
        self._deadline = time.monotonic() + self.timeout_s
        try:
            conn = self._connection(name)
            if not write:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                self._deadline = math.inf  # a rollback must not be interrupted
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise StoreUnavailable(_explain(path, error, self.timeout_s)) from error
        finally:
            self._deadline = math.inf
            self._lock.release()

    def _connection(self, name: str) -> sqlite3.Connection:
        path = self.paths[name]
        try:
            stat = path.stat()
        except FileNotFoundError:
            self.close(name)
            raise sqlite3.OperationalError("missing") from None
        identity = (stat.st_dev, stat.st_ino)
        cached = self._conns.get(name)
        if cached and cached[1] == identity:
            return cached[0]
        self.close(name)
        conn = connect(path, timeout_s=self.timeout_s)
        conn.set_progress_handler(self._expired, 1000)
        if name == self.outbox:
            for statement in _OUTBOX_TABLES:
                conn.execute(statement)
        self._conns[name] = (conn, identity)
        return conn

    def _expired(self) -> bool:
        return time.monotonic() > self._deadline

    def close(self, name: str | None = None) -> None:
        for key in [name] if name else list(self._conns):
            if key in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    self._conns.pop(key)[0].close()


def _explain(path: Any, error: sqlite3.Error, timeout_s: float) -> str:
    text = str(error)
    if text == "missing":
        return (
            f"the online store file {path} is missing (moved or deleted); put it back or "
            "rebuild it with `kedro run --pipelines features`"
        )
    if "locked" in text or "busy" in text:
        return f"the online store file {path} is locked by another writer for over {timeout_s} s"
    if "interrupted" in text:
        return f"the online store file {path} did not answer within {timeout_s} s"
    return f"the online store file {path} failed: {text}"


class PackedSqliteBackend:
    """`Backend` over `PackedSqliteOnlineStore` files.

    Args:
        config: Feast's repository configuration.
        views: The three views of `VIEWS`, resolved.
        timeout_s: The longest a call may take.
    """

    kind = "packed_sqlite"

    def __init__(self, config: RepoConfig, views: Mapping[str, FeatureView], timeout_s: float):
        self.config = config
        self.views = dict(views)
        self.timeout_s = timeout_s
        self.layouts = {name: record_layout(view) for name, view in self.views.items()}
        self.tables = {name: table_name(config, view) for name, view in self.views.items()}
        paths = {name: view_path(config, view) for name, view in self.views.items()}
        self.files = SqliteFiles(paths, timeout_s)

    def read(self, customer_id: np.ndarray, merchant_id: np.ndarray) -> Online:
        """Snapshot features of each request and today's row of each customer."""
        ids = {"customer_id": np.asarray(customer_id, np.int64)}
        ids["merchant_id"] = np.asarray(merchant_id, np.int64)
        features: dict[str, list] = {}
        today: dict[int, dict[str, Any] | None] = {}
        for name, join_key in VIEWS.items():
            rows = self._rows(name, join_key, np.unique(ids[join_key]))
            if name == TODAY:
                today = rows
            else:
                features.update(aligned(rows, ids[join_key], [n for n, _ in self.layouts[name]]))
        return Online(features, today)

    def _rows(self, name: str, join_key: str, ids: np.ndarray) -> dict[int, dict | None]:
        keys = int64_entity_keys(self.config, join_key, ids)
        with self.files.call(name) as conn:
            found = read_records(conn, self.tables[name], keys)
        layout = self.layouts[name]
        return {
            i: decode_record(layout, found[k][0]) if k in found else None
            for i, k in zip(ids.tolist(), keys, strict=True)
        }

    def append_today(
        self, entries: Mapping[int, list[Entry]], outbox: OutboxRecord | None
    ) -> list[int]:
        """Merge each customer's entries into their row and write the log record of the
        new ones, in one transaction; returns the batch rows that were new."""
        if not entries:
            return []
        layout, table = self.layouts[TODAY], self.tables[TODAY]
        ids = np.fromiter(entries, np.int64, len(entries))
        keys = int64_entity_keys(self.config, "customer_id", ids)
        added: list[int] = []
        with self.files.call(TODAY, write=True) as conn:
            found = read_records(conn, table, keys)
            writes = []
            for key, group in zip(keys, entries.values(), strict=True):
                old = decode_record(layout, found[key][0]) if key in found else None
                new, rows = merge_today(old, group)
                if new is not None:
                    writes.append((key, encode_record(layout, new), int(new["event_ns"]), None))
                added += rows
            if writes:
                conn.executemany(UPSERT.format(table=_quote(table)), writes)
            record = outbox(sorted(added)) if outbox and added else None
            if record is not None:
                conn.execute("INSERT INTO scored_outbox (record) VALUES (?)", (record,))
        return sorted(added)

    def check(self) -> None:
        """Raise StoreUnavailable unless every view's file answers a read and
        ``customer_today``'s write lock can be taken (appends would wait on it)."""
        probe = np.zeros(1, np.int64)
        for name, join_key in VIEWS.items():
            self._rows(name, join_key, probe)
        with self.files.call(TODAY, write=True):
            pass

    def outbox(self) -> SqliteOutbox:
        """The outbox, with its own connection (for the ScoreLog thread)."""
        return SqliteOutbox(SqliteFiles({TODAY: self.files.paths[TODAY]}, timeout_s=10.0))

    def review(self) -> SqliteReviewState:
        """The review loop's state: its own file beside the views'
        (``online_store.review.db``), which a rebuild of the views leaves alone."""
        if getattr(self, "_review", None) is None:
            path = view_path(self.config, REVIEW_FILE)
            self._review = SqliteReviewState(path, self.timeout_s)
        return self._review

    def close(self) -> None:
        self.files.close()


REVIEW_FILE = "review"  # online_store.review.db beside the views' files
_REVIEW_TABLES = (
    "CREATE TABLE IF NOT EXISTS review_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS review_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "entry TEXT NOT NULL)",
)


class SqliteReviewState:
    """`ReviewState` in a SQLite file: a change and its audit entries commit together
    (``BEGIN IMMEDIATE``: one writer at a time across replicas).

    Args:
        path: The database file (created with its tables when missing).
        timeout_s: The longest one call may take.
    """

    def __init__(self, path: Path, timeout_s: float) -> None:
        try:
            conn = connect(path, create=not path.exists(), timeout_s=timeout_s)
            for statement in _REVIEW_TABLES:
                conn.execute(statement)
            conn.close()
        except sqlite3.Error as error:
            raise StoreUnavailable(_explain(path, error, timeout_s)) from error
        self.files = SqliteFiles({REVIEW_FILE: path}, timeout_s, outbox=None)

    def get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored values of ``keys`` (absent keys are left out)."""
        if not keys:
            return {}
        with self.files.call(REVIEW_FILE) as conn:
            return _select_state(conn, keys)

    def update(self, keys: list[str], decide: Decide) -> tuple[dict[str, Any], list[dict]]:
        """Read ``keys``, let ``decide`` say what to write and audit, write both in one
        transaction; returns what was written."""
        with self.files.call(REVIEW_FILE, write=True) as conn:
            values, entries = decide(_select_state(conn, keys))
            conn.executemany(
                "INSERT INTO review_state VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                "value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )
            conn.executemany(
                "INSERT INTO review_audit (entry) VALUES (?)",
                [(json.dumps(e),) for e in entries],
            )
        return values, entries

    def audit(self, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` audit entries, newest first."""
        with self.files.call(REVIEW_FILE) as conn:
            rows = conn.execute(
                "SELECT entry FROM review_audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]


def _select_state(conn: sqlite3.Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), 500):  # SQLite's bound on host parameters
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT key, value FROM review_state WHERE key IN ({marks})", chunk)
        found.update((k, json.loads(v)) for k, v in rows)
    return found


class SqliteOutbox:
    """Outbox records in a SQLite file; one claim at a time, with a lease."""

    def __init__(self, files: SqliteFiles) -> None:
        self.files = files
        self.name = files.outbox

    def claim(self, owner: str, max_records: int, lease_s: float) -> Claim | None:
        """Claim the oldest records (or take over a claim whose lease ran out)."""
        now = time.time()
        with self.files.call(self.name, write=True) as conn:
            held = conn.execute(
                "SELECT first, last, owner, lease_until FROM scored_outbox_claim"
            ).fetchone()
            if held and held[2] != owner and held[3] > now:
                return None
            if held:
                first, last = held[0], held[1]
            else:
                ids = conn.execute(
                    "SELECT min(id), max(id) FROM (SELECT id FROM scored_outbox ORDER BY id "
                    "LIMIT ?)",
                    (max_records,),
                ).fetchone()
                if ids[0] is None:
                    return None
                first, last = ids
            conn.execute(
                "INSERT OR REPLACE INTO scored_outbox_claim VALUES (1, ?, ?, ?, ?)",
                (first, last, owner, now + lease_s),
            )
        with self.files.call(self.name) as conn:
            records = [
                r[0]
                for r in conn.execute(
                    "SELECT record FROM scored_outbox WHERE id BETWEEN ? AND ? ORDER BY id",
                    (first, last),
                )
            ]
        return Claim(name=f"{first:012d}-{last:012d}", records=records, token=(first, last))

    def complete(self, claim: Claim) -> None:
        """Delete the claimed records (their Parquet files are written)."""
        first, last = claim.token
        with self.files.call(self.name, write=True) as conn:
            conn.execute("DELETE FROM scored_outbox WHERE id BETWEEN ? AND ?", (first, last))
            conn.execute(
                "DELETE FROM scored_outbox_claim WHERE first = ? AND last = ?", (first, last)
            )

    def pending(self) -> int:
        """Records waiting (each holds one scored batch's new transactions)."""
        with self.files.call(self.name) as conn:
            return int(conn.execute("SELECT count(*) FROM scored_outbox").fetchone()[0])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
