"""A Feast SQLite online store that keeps one row per entity.

Feast's own SQLite store keeps one row per (entity, feature) and writes them one
statement at a time: about 10 000 entities/s here, far from what a nightly refresh of a
few million customers needs. This store keeps Feast's interface (``feast apply``,
``materialize``, ``write_to_online_store`` and ``get_online_features`` all work through
it) but stores each entity's features as one fixed-layout binary record, so a whole
snapshot is encoded with numpy and written with one ``executemany`` in one transaction.

Record layout, little-endian, for the view's features in schema order:

    uint64 null mask (bit j set: feature j is null)
    one 8-byte slot per feature: the int64 / float64 value, or an array's length
    the arrays' elements, 8 bytes each, in feature order

The table remembers the layout it was created for; ``update`` (run by ``feast apply``)
recreates a table whose view changed, so a record is never read with the wrong layout.
The last write wins, as in Feast's SQLite store, so replaying an older day is possible.

Each view lives in its own database file beside ``path`` (``online_store.db`` holds
nothing; ``online_store.customer_snapshot.db`` holds that view): SQLite has one writer
per file, so the nightly write of millions of snapshot rows never blocks the scorer's
appends to ``customer_today``. Only ``update`` (``feast apply``) creates a file; every
other call opens it read-write and fails if it is missing, so a moved or deleted store
is an error, never an empty store.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import sqlite3
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from feast import Entity, FeatureView, RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.online_store import OnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel
from feast.types import Array, Float64, Int64
from pydantic import StrictStr

logger = logging.getLogger(__name__)

TYPE = "payments_ml.feature_store.online_store.PackedSqliteOnlineStore"
# Feature type -> (slot format, kind); arrays store their length in the slot.
_KINDS = {
    Int64: ("q", "int64"),
    Float64: ("d", "float64"),
    Array(Int64): ("q", "int64[]"),
    Array(Float64): ("q", "float64[]"),
}
_PROTO_FIELD = {
    "int64": "int64_val",
    "float64": "double_val",
    "int64[]": "int64_list_val",
    "float64[]": "double_list_val",
}
_MAX_FEATURES = 64  # the null mask is one uint64
UPSERT = (
    "INSERT INTO {table} VALUES (?, ?, ?, ?) ON CONFLICT(entity_key) DO UPDATE SET "
    "record = excluded.record, event_ts = excluded.event_ts, created_ts = excluded.created_ts"
)


class PackedSqliteOnlineStoreConfig(FeastConfigBaseModel):
    """Online store configuration: where the SQLite file lives."""

    type: Literal[TYPE] = TYPE
    path: StrictStr = "data/feast/online_store.db"


class PackedSqliteOnlineStore(OnlineStore):
    """Feast online store on SQLite with one binary record per entity."""

    def __init__(self) -> None:
        super().__init__()
        self._conns: dict[str, sqlite3.Connection] = {}
        self._lock = threading.RLock()  # the connections are shared by this process's threads

    # -- Feast's interface -------------------------------------------------------------
    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Write Feast's proto rows (materialize, push, write_to_online_store)."""
        if not data:
            return
        layout = record_layout(table)
        columns = {
            name: [_from_proto(values.get(name)) for _, values, _, _ in data] for name, _ in layout
        }
        frame = pd.DataFrame(columns)
        keys = [
            serialize_entity_key(key, config.entity_key_serialization_version)
            for key, _, _, _ in data
        ]
        event_ns = _nanoseconds([ts for _, _, ts, _ in data])
        created = [created for _, _, _, created in data]
        created_ns = None if any(c is None for c in created) else _nanoseconds(created)
        self._write(
            config,
            table=table,
            keys=keys,
            records=encode_records(layout, frame),
            event_ns=event_ns,
            created_ns=created_ns,
        )
        if progress:
            progress(len(data))

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        """Each entity's (event timestamp, feature values), or (None, None) when absent."""
        keys = [
            serialize_entity_key(key, config.entity_key_serialization_version)
            for key in entity_keys
        ]
        found = self.read_records(config, table, keys)
        layout = record_layout(table)
        wanted = set(requested_features or [name for name, _ in layout])
        result: list[tuple[datetime | None, dict[str, ValueProto] | None]] = []
        for key in keys:
            if key not in found:
                result.append((None, None))
                continue
            record, event_ns = found[key]
            values = decode_record(layout, record)
            protos = {
                name: _to_proto(kind, values[name]) for name, kind in layout if name in wanted
            }
            result.append((datetime.fromtimestamp(event_ns / 1e9, UTC), protos))
        return result

    def update(  # noqa: PLR0917 (Feast's signature)
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        """Create the views' tables; recreate a table whose feature layout changed."""
        for view in tables_to_keep:
            with self._lock, transaction(self._connection(config, view, create=True)) as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS _packed_layouts (name TEXT PRIMARY KEY, "
                    "layout TEXT)"
                )
                name, layout = table_name(config, view), json.dumps(record_layout(view))
                stored = conn.execute(
                    "SELECT layout FROM _packed_layouts WHERE name = ?", (name,)
                ).fetchone()
                if stored is not None and stored[0] != layout:
                    logger.warning(
                        "Online store: the features of %s changed, its table is recreated; "
                        "materialize again to fill it",
                        view.name,
                    )
                    conn.execute(f"DROP TABLE IF EXISTS {_quote(name)}")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {_quote(name)} (entity_key BLOB PRIMARY KEY, "
                    "record BLOB NOT NULL, event_ts INTEGER NOT NULL, created_ts INTEGER) "
                    "WITHOUT ROWID"
                )
                conn.execute("INSERT OR REPLACE INTO _packed_layouts VALUES (?, ?)", (name, layout))
        for view in tables_to_delete:
            if not view_path(config, view).exists():
                continue
            with self._lock, transaction(self._connection(config, view)) as conn:
                name = table_name(config, view)
                conn.execute(f"DROP TABLE IF EXISTS {_quote(name)}")
                conn.execute("DELETE FROM _packed_layouts WHERE name = ?", (name,))

    def teardown(
        self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]
    ) -> None:
        """Delete the views' tables."""
        self.update(config, tables, [], entities, [], partial=True)

    # -- bulk path ---------------------------------------------------------------------
    def write_frame(
        self, config: RepoConfig, table: FeatureView, join_key: str, rows: pd.DataFrame
    ) -> int:
        """Write one row per entity from a DataFrame, in one transaction.

        ``rows`` holds the int64 join key, ``snapshot_ts`` and every feature of the view;
        the caller checks the columns and types first.
        """
        if rows.empty:
            return 0
        keys = int64_entity_keys(config, join_key, rows[join_key].to_numpy(np.int64))
        event_ns = _nanoseconds(rows["snapshot_ts"])
        records = encode_records(record_layout(table), rows)
        self._write(
            config, table=table, keys=keys, records=records, event_ns=event_ns, created_ns=None
        )
        return len(rows)

    def read_records(
        self, config: RepoConfig, table: FeatureView, keys: list[bytes]
    ) -> dict[bytes, tuple[bytes, int]]:
        """The stored (record, event_ts) of the given serialized entity keys."""
        if not keys:
            return {}
        with self._lock:
            return read_records(self._connection(config, table), table_name(config, table), keys)

    # -- internals ---------------------------------------------------------------------
    def _write(
        self,
        config: RepoConfig,
        *,
        table: FeatureView,
        keys: list[bytes],
        records: list[bytes],
        event_ns: np.ndarray,
        created_ns: np.ndarray | None,
    ) -> None:
        created = [None] * len(keys) if created_ns is None else created_ns.tolist()
        # One transaction: all or none.
        with self._lock, transaction(self._connection(config, table)) as conn:
            conn.executemany(
                UPSERT.format(table=_quote(table_name(config, table))),
                zip(keys, records, event_ns.tolist(), created, strict=True),
            )

    def _connection(
        self, config: RepoConfig, view: FeatureView, create: bool = False
    ) -> sqlite3.Connection:
        path = view_path(config, view)
        key = str(path)
        if key not in self._conns or not path.exists():
            if key in self._conns:
                self._conns.pop(key).close()
            self._conns[key] = connect(path, create=create, timeout_s=30.0)
        return self._conns[key]


def view_path(config: RepoConfig, view: FeatureView | str) -> Path:
    """The database file of one view: ``<path stem>.<view>.db`` beside ``path``."""
    path = Path(config.online_store.path)
    if config.repo_path and not path.is_absolute():
        path = Path(config.repo_path) / path
    name = view if isinstance(view, str) else view.name
    return path.with_name(f"{path.stem}.{name}{path.suffix or '.db'}")


def connect(path: Path, create: bool = False, timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode (readers never wait for a writer), in autocommit mode.

    Args:
        path: The database file.
        create: Create the file if it is missing (only ``feast apply`` does); otherwise
            a missing file raises ``sqlite3.OperationalError``, never an empty store.
        timeout_s: How long a write waits for another writer's lock (SQLite's busy
            timeout) before failing with "database is locked".
    """
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.exists():
        raise sqlite3.OperationalError(f"unable to open database file {path}: it is missing")
    uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
    conn = sqlite3.connect(
        uri, uri=True, timeout=timeout_s, check_same_thread=False, isolation_level=None
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a commit survives a process crash
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error): the write lock is
    taken at the start, so a read-modify-write inside is atomic across processes."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def read_records(
    conn: sqlite3.Connection, table: str, keys: list[bytes]
) -> dict[bytes, tuple[bytes, int]]:
    """The stored (record, event_ts) of the given serialized entity keys in ``table``."""
    found: dict[bytes, tuple[bytes, int]] = {}
    name = _quote(table)
    for start in range(0, len(keys), 900):  # below SQLite's bound-variable limit
        chunk = keys[start : start + 900]
        rows = conn.execute(
            f"SELECT entity_key, record, event_ts FROM {name} "
            f"WHERE entity_key IN ({','.join('?' * len(chunk))})",
            chunk,
        ).fetchall()
        found.update((key, (record, ts)) for key, record, ts in rows)
    return found


def provider_online_store(store: Any) -> OnlineStore:
    """The online store object a FeatureStore's provider reads with (its connection)."""
    from feast.infra.online_stores.helpers import get_online_store_from_config  # noqa: PLC0415

    provider = store._get_provider()
    return getattr(provider, "online_store", None) or get_online_store_from_config(
        store.config.online_store
    )


def record_layout(view: FeatureView) -> list[tuple[str, str]]:
    """The view's (feature, kind) pairs in schema order."""
    if len(view.features) > _MAX_FEATURES:
        raise ValueError(
            f"{view.name}: {len(view.features)} features; the packed online store holds "
            f"at most {_MAX_FEATURES} per view; split the view"
        )
    layout = []
    for field in view.features:
        if field.dtype not in _KINDS:
            raise ValueError(
                f"{view.name}: feature '{field.name}' has type {field.dtype}; the packed "
                "online store holds Int64, Float64 and arrays of them; use Feast's 'sqlite' "
                "online store for other types"
            )
        layout.append((field.name, _KINDS[field.dtype][1]))
    return layout


def encode_records(layout: list[tuple[str, str]], rows: pd.DataFrame) -> list[bytes]:
    """One binary record per row (see the module docstring)."""
    n = len(rows)
    fixed = np.zeros((n, 1 + len(layout)), dtype=np.int64)
    mask = np.zeros(n, dtype=np.uint64)
    tails: list[tuple[bytes, np.ndarray]] = []
    for j, (name, kind) in enumerate(layout):
        column = rows[name]
        missing = column.isna().to_numpy() if not kind.endswith("[]") else _null_arrays(column)
        mask |= missing.astype(np.uint64) << np.uint64(j)
        if kind == "int64":
            fixed[:, j + 1] = column.fillna(0).to_numpy(np.int64)
        elif kind == "float64":
            fixed[:, j + 1] = column.fillna(0).to_numpy(np.float64).view(np.int64)
        else:
            arrays = [np.asarray(v if v is not None else [], kind[:-2]) for v in column]
            lengths = np.fromiter((a.size for a in arrays), np.int64, n)
            fixed[:, j + 1] = lengths
            flat = np.concatenate(arrays) if n else np.empty(0, kind[:-2])
            offsets = np.concatenate(([0], np.cumsum(lengths) * 8))
            tails.append((flat.astype(kind[:-2]).tobytes(), offsets))
    fixed[:, 0] = mask.view(np.int64)
    width = fixed.shape[1] * 8
    head = fixed.astype("<i8").tobytes()
    records = [head[i * width : (i + 1) * width] for i in range(n)]
    for data, offsets in tails:
        starts, ends = offsets[:-1].tolist(), offsets[1:].tolist()
        records = [r + data[s:e] for r, s, e in zip(records, starts, ends, strict=True)]
    return records


def encode_record(layout: list[tuple[str, str]], row: dict[str, Any]) -> bytes:
    """:func:`_encode` of one row given as a dict (read-modify-write updates: no pandas)."""
    mask, slots, fixed, tails = 0, [], [], []
    for j, (name, kind) in enumerate(layout):
        value = row.get(name)
        if kind.endswith("[]"):
            values = [] if value is None else list(value)
            code = "d" if kind == "float64[]" else "q"
            mask |= (value is None) << j
            slots.append("q")
            fixed.append(len(values))
            tails.append(struct.pack(f"<{len(values)}{code}", *values))
            continue
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        mask |= missing << j
        slots.append("d" if kind == "float64" else "q")
        fixed.append(0 if missing else value)
    return struct.pack(f"<Q{''.join(slots)}", mask, *fixed) + b"".join(tails)


def decode_record(layout: list[tuple[str, str]], record: bytes) -> dict[str, Any]:
    slots = "".join("d" if kind == "float64" else "q" for _, kind in layout)
    head = struct.unpack_from(f"<Q{slots}", record)
    mask, values = head[0], head[1:]
    offset = 8 * len(head)
    decoded: dict[str, Any] = {}
    for j, (name, kind) in enumerate(layout):
        value: Any = values[j]
        if kind.endswith("[]"):
            count = int(value)
            code = "d" if kind == "float64[]" else "q"
            value = list(struct.unpack_from(f"<{count}{code}", record, offset))
            offset += 8 * count
        decoded[name] = None if mask >> j & 1 else value
    return decoded


def _to_proto(kind: str, value: Any) -> ValueProto:
    if value is None:
        return ValueProto()
    if kind == "int64[]":
        return ValueProto(int64_list_val=Int64List(val=value))
    if kind == "float64[]":
        return ValueProto(double_list_val=DoubleList(val=value))
    return ValueProto(**{_PROTO_FIELD[kind]: value})


def _from_proto(value: ValueProto | None) -> Any:
    if value is None:
        return None
    field = value.WhichOneof("val")
    if field is None or field == "null_val":
        return None
    payload = getattr(value, field)
    return list(payload.val) if field.endswith("_list_val") else payload


def _null_arrays(column: pd.Series) -> np.ndarray:
    return np.fromiter((v is None for v in column), bool, len(column))


def int64_entity_keys(config: RepoConfig, join_key: str, ids: np.ndarray) -> list[bytes]:
    """Feast's serialized keys for int64 ids, built with numpy.

    The serialization of a single int64 key is a constant prefix followed by the value's
    8 little-endian bytes; the prefix is taken from Feast itself, and checked against
    Feast's own serialization of a few ids, once per join key and encoding version.
    """
    version = config.entity_key_serialization_version
    prefix = _key_prefix(join_key, version)
    if prefix is None:  # a Feast version with another key encoding: the slow, exact path
        return [_feast_key(join_key, version, int(v)) for v in np.asarray(ids).tolist()]
    raw = np.asarray(ids).astype("<i8").tobytes()
    return [prefix + raw[i * 8 : i * 8 + 8] for i in range(len(ids))]


def _feast_key(join_key: str, version: int, value: int) -> bytes:
    proto = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=value)])
    return serialize_entity_key(proto, version)


@functools.lru_cache(maxsize=64)
def _key_prefix(join_key: str, version: int) -> bytes | None:
    prefix = _feast_key(join_key, version, 0)[:-8]
    for value in (1, -1, 12_345, 2**62 + 7, -(2**63), 2**63 - 1):
        expected = prefix + np.array([value], "<i8").tobytes()
        if _feast_key(join_key, version, value) != expected:
            return None
    return prefix


def _nanoseconds(stamps: Any) -> np.ndarray:
    values = pd.to_datetime(pd.Series(stamps), utc=True)
    return values.dt.as_unit("ns").astype("int64").to_numpy()


def table_name(config: RepoConfig, view: FeatureView) -> str:
    return f"{config.project}_{view.name}"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
