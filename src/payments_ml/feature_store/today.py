"""Today's running part of the customer windows, kept in the online store.

The scorer appends every transaction it scores to its customer's ``customer_today`` row
(event times, amounts and hashed ids of the customer's transactions since midnight UTC),
so the customer's next transaction sees it. Appends are idempotent (a retried
transaction is not counted twice) and a new day starts the row afresh.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from feast import FeatureStore, FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import DoubleList, Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from payments_ml.feature_store.online_store import PackedSqliteOnlineStore, provider_online_store
from payments_ml.features.windows import day_of, to_ns

logger = logging.getLogger(__name__)

VIEW = "customer_today"
COLUMNS = ["day", "tx_ns", "amounts", "tx_keys"]
_LOCK = threading.Lock()  # other stores (Feast's sqlite): one writer per process


def transaction_key(transaction_id: str) -> int:
    """A stable signed 64-bit hash of a transaction id."""
    digest = hashlib.blake2b(transaction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def today_transactions(
    state: dict[str, list], customer_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transactions held in ``customer_today`` rows: (customer_id, int64 ns, amount).

    Args:
        state: ``tx_ns`` and ``amounts`` per customer, as the online store returns them
            (None where a customer has no row).
        customer_ids: The customer of each state row.
    """
    customers, stamps, amounts = [], [], []
    for customer, tx_ns, amount in zip(customer_ids, state["tx_ns"], state["amounts"], strict=True):
        if tx_ns:
            customers.append(np.full(len(tx_ns), customer, np.int64))
            stamps.append(np.asarray(tx_ns, np.int64))
            amounts.append(np.asarray(amount, float))
    if not customers:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, float)
    return np.concatenate(customers), np.concatenate(stamps), np.concatenate(amounts)


def append_today(
    store: FeatureStore,
    rows: Mapping[str, Any],
    view: FeatureView | None = None,
    online: Any = None,
) -> int:
    """Add scored transactions to their customers' rows; returns the customers written.

    Args:
        store: The feature store.
        rows: ``transaction_id``, ``customer_id``, ``event_timestamp``, ``amount``
            (a DataFrame or any mapping of columns).
        view: The ``customer_today`` view, when the caller has it resolved already.
        online: The store's online store object, likewise.
    """
    if not len(rows["transaction_id"]):
        return 0
    view = view or store.get_feature_view(VIEW)
    ns = to_ns(rows["event_timestamp"])
    customers = np.asarray(rows["customer_id"], np.int64)
    order = np.lexsort((ns, customers))
    entries: dict[int, list[tuple[int, int, float, int]]] = {}
    for i, day, stamp, amount, tx_id in zip(
        customers[order].tolist(),
        day_of(ns)[order].tolist(),
        ns[order].tolist(),
        np.asarray(rows["amount"], float)[order].tolist(),
        np.asarray(rows["transaction_id"], object)[order],
        strict=True,
    ):
        entries.setdefault(i, []).append((day, stamp, amount, transaction_key(tx_id)))
    updates = {customer: _merger(group) for customer, group in entries.items()}
    if online is None:  # the provider's instance: the connection the reads use
        online = provider_online_store(store)
    if isinstance(online, PackedSqliteOnlineStore):
        return online.update_rows(store.config, view, "customer_id", updates)
    if type(online).__name__ == "RedisOnlineStore":
        return _update_redis(store, online, updates)
    with _LOCK:
        return _update_with_feast(store, view, online, updates)


def _merger(
    entries: list[tuple[int, int, float, int]],
) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """The update of one customer's row by their (day, ns, amount, key) in time order."""

    def merge(old: dict[str, Any] | None) -> dict[str, Any] | None:
        state = old if old is not None and old.get("day") is not None else None
        seen = set(state["tx_keys"]) if state else set()
        changed = False
        for day, stamp, amount, key in entries:
            if state is not None and state["day"] > day:
                continue  # yesterday's transaction after midnight: the nightly batch has it
            if state is None or state["day"] < day:
                state = {"day": int(day), "tx_ns": [], "amounts": [], "tx_keys": []}
                seen = set()
            if key not in seen:
                state["tx_ns"].append(stamp)
                state["amounts"].append(amount)
                state["tx_keys"].append(key)
                seen.add(key)
                changed = True
        if not changed or state is None:
            return None
        return {**state, "event_ns": max(state["tx_ns"])}

    return merge


def _update_redis(store: FeatureStore, online: Any, updates: dict[int, Callable]) -> int:
    """Optimistic transactions (WATCH / MULTI) on Feast's Redis layout: atomic across
    replicas; a conflicting write makes the loser re-read and retry."""
    from feast.infra.online_stores.redis import _mmh3, _redis_key  # noqa: PLC0415
    from google.protobuf.timestamp_pb2 import Timestamp  # noqa: PLC0415
    from redis.exceptions import WatchError  # noqa: PLC0415

    client = online._get_client(store.config.online_store)
    fields = [_mmh3(f"{VIEW}:{name}") for name in COLUMNS]
    written = 0
    for customer, update in updates.items():
        entity = EntityKeyProto(
            join_keys=["customer_id"], entity_values=[ValueProto(int64_val=customer)]
        )
        key = _redis_key(
            store.config.project, entity, store.config.entity_key_serialization_version
        )
        while True:
            with client.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.hmget(key, fields)
                    new = update(_from_redis(raw))
                    if new is None:
                        pipe.unwatch()
                        break
                    stamp = Timestamp()
                    stamp.FromDatetime(datetime.fromtimestamp(new["event_ns"] / 1e9, UTC))
                    mapping = {f"_ts:{VIEW}": stamp.SerializeToString()}
                    for field, proto in zip(fields, _protos(new).values(), strict=True):
                        mapping[field] = proto.SerializeToString()
                    pipe.multi()
                    pipe.hset(key, mapping=mapping)
                    pipe.execute()
                    written += 1
                    break
                except WatchError:
                    continue  # another replica wrote this customer: read again
    return written


def _from_redis(raw: list[bytes | None]) -> dict[str, Any] | None:
    if raw[0] is None:
        return None
    protos = []
    for blob in raw:
        proto = ValueProto()
        proto.ParseFromString(blob or b"")
        protos.append(proto)
    return _state(dict(zip(COLUMNS, protos, strict=True)))


def _state(values: dict[str, ValueProto]) -> dict[str, Any]:
    """A customer_today row from its Feast protos (the inverse of `_protos`)."""
    day = values["day"]
    return {
        "day": day.int64_val if day.HasField("int64_val") else None,
        "tx_ns": list(values["tx_ns"].int64_list_val.val),
        "amounts": list(values["amounts"].double_list_val.val),
        "tx_keys": list(values["tx_keys"].int64_list_val.val),
    }


def _protos(state: dict[str, Any]) -> dict[str, ValueProto]:
    return {
        "day": ValueProto(int64_val=state["day"]),
        "tx_ns": ValueProto(int64_list_val=Int64List(val=state["tx_ns"])),
        "amounts": ValueProto(double_list_val=DoubleList(val=state["amounts"])),
        "tx_keys": ValueProto(int64_list_val=Int64List(val=state["tx_keys"])),
    }


def _update_with_feast(
    store: FeatureStore, view: FeatureView, online: Any, updates: dict[int, Callable]
) -> int:
    keys = [
        EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(int64_val=c)])
        for c in updates
    ]
    current = online.online_read(store.config, view, keys)
    rows = []
    for key, (_, values), update in zip(keys, current, updates.values(), strict=True):
        new = update(_state(values) if values else None)
        if new is not None:
            protos = _protos(new)
            stamp = datetime.fromtimestamp(new["event_ns"] / 1e9, UTC)
            rows.append((key, protos, stamp, None))
    if rows:
        online.online_write_batch(store.config, view, rows, progress=None)
    return len(rows)
