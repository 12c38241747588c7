"""Any other Feast online store (Feast's own ``sqlite``, say) for the scorer.

Reads and writes go through Feast's `OnlineStore` interface (``online_read``,
``online_write_batch``), which has no atomic read-modify-write: appends are serialised
within this process only, so run one replica with these stores. The outbox is a SQLite
file beside the store's ``path`` (``<path>.outbox.db``), written after the append: a
crash between the two loses that batch's log record. Use ``packed_sqlite`` or
``redis`` for exactly-once logging across replicas.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from feast import FeatureStore, FeatureView

from payments_ml.feature_store.backends import (
    TODAY,
    VIEWS,
    Online,
    OutboxRecord,
    StoreUnavailable,
    aligned,
    entity_key,
    python_row,
    today_protos,
)
from payments_ml.feature_store.backends.packed_sqlite import (
    SqliteFiles,
    SqliteOutbox,
    SqliteReviewState,
)
from payments_ml.feature_store.online_store import connect, provider_online_store
from payments_ml.features.today import Entry, merge_today

_LOCK = threading.Lock()  # one writer per process


class FeastBackend:
    """`Backend` through Feast's generic online-store interface.

    Args:
        store: The feature store.
        views: The three views of `VIEWS`, resolved.
        timeout_s: The longest an outbox call may take (Feast's stores set their own).
    """

    kind = "feast"

    def __init__(self, store: FeatureStore, views: Mapping[str, FeatureView], timeout_s: float):
        self.config = store.config
        self.views = dict(views)
        self.online = provider_online_store(store)
        path = getattr(self.config.online_store, "path", None)
        self.outbox_path = Path(f"{path}.outbox.db") if path else None
        if self.outbox_path is not None and not self.outbox_path.exists():
            connect(self.outbox_path, create=True).close()
        self.timeout_s = timeout_s
        self._outbox = self.outbox()

    def _call(self, what: str, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except StoreUnavailable:
            raise
        except Exception as error:
            raise StoreUnavailable(f"the online store could not {what}: {error}") from error

    def read(self, customer_id: np.ndarray, merchant_id: np.ndarray) -> Online:
        """Snapshot features of each request and today's row of each customer."""
        return self._call("be read", self._read, customer_id, merchant_id)

    def _read(self, customer_id: np.ndarray, merchant_id: np.ndarray) -> Online:
        ids = {"customer_id": np.asarray(customer_id, np.int64)}
        ids["merchant_id"] = np.asarray(merchant_id, np.int64)
        features: dict[str, list] = {}
        today: dict[int, dict[str, Any] | None] = {}
        for name, join_key in VIEWS.items():
            distinct = np.unique(ids[join_key]).tolist()
            rows = self._rows(name, join_key, distinct)
            if name == TODAY:
                today = rows
            else:
                names = [f.name for f in self.views[name].features]
                features.update(aligned(rows, ids[join_key], names))
        return Online(features, today)

    def _rows(self, name: str, join_key: str, ids: list[int]) -> dict[int, dict | None]:
        view = self.views[name]
        names = [f.name for f in view.features]
        keys = [entity_key(join_key, i) for i in ids]
        found = self.online.online_read(self.config, view, keys, names)
        return {i: python_row(values, names) for i, (_, values) in zip(ids, found, strict=True)}

    def append_today(
        self, entries: Mapping[int, list[Entry]], outbox: OutboxRecord | None
    ) -> list[int]:
        """Merge each customer's entries into their row, then write the log record."""
        return self._call("record the transactions", self._append, entries, outbox)

    def _append(self, entries: Mapping[int, list[Entry]], outbox: OutboxRecord | None) -> list:
        added: list[int] = []
        with _LOCK:
            current = self._rows(TODAY, "customer_id", list(entries))
            writes = []
            for customer, group in entries.items():
                new, rows = merge_today(current[customer], group)
                if new is not None:
                    stamp = datetime.fromtimestamp(new["event_ns"] / 1e9, UTC)
                    writes.append(
                        (entity_key("customer_id", customer), today_protos(new), stamp, None)
                    )
                added += rows
            if writes:
                self.online.online_write_batch(self.config, self.views[TODAY], writes, None)
        record = outbox(sorted(added)) if outbox and added else None
        if record is not None:
            if self.outbox_path is None:
                raise StoreUnavailable(
                    f"{type(self.online).__name__} has no path for the scored-transaction "
                    "outbox; use the packed_sqlite or redis online store"
                )
            with self._outbox.files.call("outbox", write=True) as conn:
                conn.execute("INSERT INTO scored_outbox (record) VALUES (?)", (record,))
        return sorted(added)

    def check(self) -> None:
        """Raise StoreUnavailable unless the store answers a read."""
        self.read(np.zeros(1, np.int64), np.zeros(1, np.int64))

    def review(self) -> SqliteReviewState:
        """The review loop's state, a SQLite file beside the store's ``path``
        (``<path>.review.db``)."""
        if self.outbox_path is None:
            raise StoreUnavailable(
                f"{type(self.online).__name__} has no path for the review state; use the "
                "packed_sqlite or redis online store"
            )
        if getattr(self, "_review", None) is None:
            path = self.outbox_path.with_name(self.outbox_path.name.replace(".outbox.", ".review."))
            self._review = SqliteReviewState(path, max(self.timeout_s, 1.0))
        return self._review

    def outbox(self) -> SqliteOutbox:
        """The outbox file, with its own connection."""
        paths = {"outbox": self.outbox_path} if self.outbox_path else {}
        return SqliteOutbox(
            SqliteFiles(paths, timeout_s=max(self.timeout_s, 10.0), outbox="outbox")
        )
