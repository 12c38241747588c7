"""What the scorer needs from an online store, one small object per backend.

A backend reads the three views the scorer uses (``customer_snapshot``,
``merchant_snapshot``, ``customer_today``), appends scored transactions to
``customer_today`` atomically across replicas, and keeps the scored-transaction outbox:
each append writes the log record of its new transactions in the same transaction, so a
transaction the scorer answered is in the log exactly once, whatever crashes (the
``ScoreLog`` thread moves outbox records to Parquet). Every call is bounded by
``timeout_s``; a store that is missing, locked or unreachable raises `StoreUnavailable`.
Beside the views, a backend keeps the review loop's state (`ReviewState`: card blocks,
analysts' verdicts, the audit log) in the same store, so it survives restarts.

`open_backend` picks the backend from the store's configuration: ``packed_sqlite``
(the embedded default), ``redis`` (the cluster environment), or any other Feast online
store through Feast's interface (``feast``: appends are serialised within one process
only, and the outbox is a SQLite file beside the store's ``path``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from payments_ml.features.today import COLUMNS, Entry

TODAY = "customer_today"  # the view the scorer appends to
VIEWS = {  # view -> join key
    "customer_snapshot": "customer_id",
    "merchant_snapshot": "merchant_id",
    TODAY: "customer_id",
}


class StoreUnavailable(RuntimeError):
    """The online store could not be read or written in time; scoring cannot go on."""


@dataclass(frozen=True)
class Claim:
    """Outbox records claimed by one compactor; ``name`` is the same whoever claims
    the same records, so a rewrite after a crash replaces the same files."""

    name: str
    records: list[bytes]
    token: Any  # what the backend needs to delete exactly these records


@dataclass(frozen=True)
class Online:
    """What one read returns, aligned with the requests."""

    features: dict[str, list]  # snapshot features of each request's customer and merchant
    today: dict[int, dict[str, Any] | None]  # customer_today row of each customer


OutboxRecord = Callable[[list[int]], bytes | None]
"""Given the batch rows an append added, the log record to write with them."""


class Backend(Protocol):
    """The scorer's view of one online store (see the module docstring)."""

    kind: str

    def read(self, customer_id: np.ndarray, merchant_id: np.ndarray) -> Online: ...

    def append_today(
        self, entries: Mapping[int, list[Entry]], outbox: OutboxRecord | None
    ) -> list[int]: ...

    def check(self) -> None: ...

    def outbox(self) -> Outbox: ...

    def review(self) -> ReviewState: ...


class ReviewState(Protocol):
    """The review loop's state kept in the online store (docs/design.md, "Review loop"):
    JSON values by key (a card's block, a transaction's latest analyst verdict) and the
    audit log, changed together in one atomic step across replicas, so a block survives
    restarts and every replica sees it at its next read."""

    def get(self, keys: list[str]) -> dict[str, dict[str, Any]]: ...

    def update(self, keys: list[str], decide: Decide) -> tuple[dict[str, Any], list[dict]]: ...

    def audit(self, limit: int) -> list[dict[str, Any]]: ...


Decide = Callable[[dict[str, dict[str, Any]]], tuple[dict[str, Any], list[dict[str, Any]]]]
"""Given the current values of some keys, the values to write and the audit entries."""


class Outbox(Protocol):
    """The scored-transaction records waiting to be written to the Parquet log."""

    def claim(self, owner: str, max_records: int, lease_s: float) -> Claim | None: ...

    def complete(self, claim: Claim) -> None: ...

    def pending(self) -> int: ...


def open_backend(store: Any, timeout_s: float) -> Backend:
    """The backend of a Feast store's online store (its views resolved once, here).

    Raises:
        StoreUnavailable: The registry or the store cannot be opened.
    """
    online_type = str(store.config.online_store.type)
    try:
        views = {name: store.get_feature_view(name) for name in VIEWS}
    except Exception as error:
        raise StoreUnavailable(f"the feature registry could not be read: {error}") from error
    if online_type.endswith("PackedSqliteOnlineStore"):
        from payments_ml.feature_store.backends.packed_sqlite import (  # noqa: PLC0415
            PackedSqliteBackend,
        )

        return PackedSqliteBackend(store.config, views, timeout_s)
    if online_type == "redis" or online_type.endswith("RedisOnlineStore"):
        from payments_ml.feature_store.backends.redis import RedisBackend  # noqa: PLC0415

        return RedisBackend(store, views, timeout_s)
    from payments_ml.feature_store.backends.feast import FeastBackend  # noqa: PLC0415

    return FeastBackend(store, views, timeout_s)


def aligned(rows: dict[int, dict[str, Any] | None], ids: np.ndarray, names: list[str]) -> dict:
    """``{feature: [value of each id]}`` from one row per distinct id (None: no row)."""
    looked_up = [rows.get(i) for i in ids.tolist()]
    return {n: [r[n] if r else None for r in looked_up] for n in names}


def entity_key(join_key: str, value: int) -> EntityKeyProto:
    """Feast's entity key of one int64 id."""
    return EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=int(value))])


def python_row(values: dict[str, ValueProto] | None, names: list[str]) -> dict[str, Any] | None:
    """A row of Feast values as Python; None when the store has none (or only nulls, as
    Redis leaves after a view is cleared)."""
    row = {n: _python_value(values.get(n)) for n in names} if values else {}
    return row if any(v is not None for v in row.values()) else None


def _python_value(value: ValueProto | None) -> Any:
    if value is None or value.WhichOneof("val") in (None, "null_val"):
        return None
    return feast_value_type_to_python_type(value)


def today_protos(row: dict[str, Any]) -> dict[str, ValueProto]:
    """A ``customer_today`` row as Feast values, by feature name."""
    values = (
        ValueProto(int64_val=row["day"]),
        ValueProto(int64_list_val=Int64List(val=row["tx_ns"])),
        ValueProto(double_list_val=DoubleList(val=row["amounts"])),
        ValueProto(int64_list_val=Int64List(val=row["tx_keys"])),
    )
    return dict(zip(COLUMNS, values, strict=True))
