"""The Redis online store (cluster environment) for the scorer.

Reads go through Feast's `RedisOnlineStore.online_read`; appends to ``customer_today``
write Feast's layout (a hash per entity, fields keyed by murmur3 of ``view:feature``)
in an optimistic transaction (WATCH / MULTI): atomic across replicas, a conflicting
write makes the loser re-read and retry. The outbox is a Redis stream written in the
same MULTI. Every call is bounded by ``timeout_s`` (redis-py socket timeouts).

This is the one module that knows Feast's Redis internals (`_redis_key`, `_mmh3`, the
client): a Feast upgrade that changes them touches this file only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from feast import FeatureStore, FeatureView
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from payments_ml.feature_store.backends import (
    TODAY,
    VIEWS,
    Claim,
    Decide,
    Online,
    OutboxRecord,
    StoreUnavailable,
    aligned,
    entity_key,
    python_row,
    today_protos,
)
from payments_ml.features.today import COLUMNS, Entry, merge_today


class RedisBackend:
    """`Backend` over Feast's Redis online store.

    Args:
        store: The feature store (its configuration names the Redis server).
        views: The three views of `VIEWS`, resolved.
        timeout_s: Socket timeout of every Redis call.
    """

    kind = "redis"

    def __init__(self, store: FeatureStore, views: Mapping[str, FeatureView], timeout_s: float):
        self.views = dict(views)
        self.timeout_s = timeout_s
        self.config = store.config
        self.online = RedisOnlineStore()
        self.address = self.config.online_store.connection_string.split(",")[0]
        self.stream = f"{self.config.project}:scored_outbox".encode()
        self.fields = [_mmh3(f"{TODAY}:{name}") for name in COLUMNS]

    def _call(self, what: str, function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except StoreUnavailable:
            raise
        except Exception as error:
            raise StoreUnavailable(
                f"the online store (Redis at {self.address}) could not {what}: {error}"
            ) from error

    @property
    def client(self) -> Any:
        """Feast's client, made here: every call bounded by ``timeout_s`` and never
        retried (redis-py's default retries a refused connection with back-off, about
        7 s: the request would wait that long instead of getting its 503)."""
        if self.online._client is None:
            import redis  # noqa: PLC0415
            from redis.backoff import NoBackoff  # noqa: PLC0415
            from redis.retry import Retry  # noqa: PLC0415

            nodes, params = RedisOnlineStore._parse_connection_string(
                self.config.online_store.connection_string
            )
            if len(nodes) != 1 or self.config.online_store.redis_type != "redis":
                raise StoreUnavailable(
                    "the scorer supports one Redis server (redis_type: redis); "
                    f"got {self.config.online_store.connection_string!r}"
                )
            params.update(socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s)
            self.online._client = redis.Redis(
                host=nodes[0]["host"],
                port=int(nodes[0]["port"]),
                retry=Retry(NoBackoff(), 0),
                **params,
            )
        return self.online._client

    def read(self, customer_id: np.ndarray, merchant_id: np.ndarray) -> Online:
        """Snapshot features of each request and today's row of each customer."""
        return self._call("be read", self._read, customer_id, merchant_id)

    def _read(self, customer_id: np.ndarray, merchant_id: np.ndarray) -> Online:
        _ = self.client  # Feast's reads use the client made here
        ids = {"customer_id": np.asarray(customer_id, np.int64)}
        ids["merchant_id"] = np.asarray(merchant_id, np.int64)
        features: dict[str, list] = {}
        today: dict[int, dict[str, Any] | None] = {}
        for name, join_key in VIEWS.items():
            view = self.views[name]
            distinct = np.unique(ids[join_key]).tolist()
            keys = [entity_key(join_key, i) for i in distinct]
            names = [f.name for f in view.features]
            rows = {
                i: python_row(values, names)
                for i, (_, values) in zip(
                    distinct, self.online.online_read(self.config, view, keys, names), strict=True
                )
            }
            if name == TODAY:
                today = rows
            else:
                features.update(aligned(rows, ids[join_key], names))
        return Online(features, today)

    def append_today(
        self, entries: Mapping[int, list[Entry]], outbox: OutboxRecord | None
    ) -> list[int]:
        """Merge each customer's entries into their row, with the log record of the new
        ones, one optimistic transaction per customer; the batch rows that were new."""
        return self._call("record the transactions", self._append, entries, outbox)

    def _append(self, entries: Mapping[int, list[Entry]], outbox: OutboxRecord | None) -> list:
        from redis.exceptions import WatchError  # noqa: PLC0415

        client = self.client
        added: list[int] = []
        for customer, group in entries.items():
            key = self._key(customer)
            while True:
                with client.pipeline() as pipe:
                    try:
                        pipe.watch(key)
                        new, rows = merge_today(_today_row(pipe.hmget(key, self.fields)), group)
                        if new is None:
                            pipe.unwatch()
                            break
                        pipe.multi()
                        pipe.hset(key, mapping=self._mapping(new))
                        record = outbox(rows) if outbox and rows else None
                        if record is not None:
                            pipe.xadd(self.stream, {b"record": record})
                        pipe.execute()
                        added += rows
                        break
                    except WatchError:
                        continue  # another replica wrote this customer: read again
        return sorted(added)

    def _key(self, customer: int) -> bytes:
        return _redis_key(
            self.config.project,
            entity_key("customer_id", customer),
            self.config.entity_key_serialization_version,
        )

    def _mapping(self, row: dict[str, Any]) -> dict[Any, bytes]:
        stamp = Timestamp()
        stamp.FromDatetime(datetime.fromtimestamp(row["event_ns"] / 1e9, UTC))
        protos = today_protos(row).values()
        mapping: dict[Any, bytes] = {f"_ts:{TODAY}": stamp.SerializeToString()}
        mapping.update(
            (field, proto.SerializeToString())
            for field, proto in zip(self.fields, protos, strict=True)
        )
        return mapping

    def check(self) -> None:
        """Raise StoreUnavailable unless Redis answers."""
        self._call("be reached", self.client.ping)

    def outbox(self) -> RedisOutbox:
        """The outbox (the ScoreLog thread's own client)."""
        backend = RedisBackend.__new__(RedisBackend)
        backend.__dict__.update(self.__dict__)
        backend.online = RedisOnlineStore()
        return RedisOutbox(backend)

    def review(self) -> RedisReviewState:
        """The review loop's state: a hash and a list under ``<project>:review``."""
        if getattr(self, "_review", None) is None:
            self._review = RedisReviewState(self)
        return self._review


class RedisReviewState:
    """`ReviewState` in Redis: values in the hash ``<project>:review:state``, the audit
    log in the list ``<project>:review:audit``; a change and its entries are one
    optimistic transaction (WATCH / MULTI), atomic across replicas."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.state = f"{backend.config.project}:review:state".encode()
        self.log = f"{backend.config.project}:review:audit".encode()

    def get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored values of ``keys`` (absent keys are left out)."""
        if not keys:
            return {}
        raw = self.backend._call(
            "read the review state", self.backend.client.hmget, self.state, keys
        )
        return {k: json.loads(v) for k, v in zip(keys, raw, strict=True) if v is not None}

    def update(self, keys: list[str], decide: Decide) -> tuple[dict[str, Any], list[dict]]:
        """Read ``keys``, let ``decide`` say what to write and audit, write both in one
        transaction (retried when another replica changed the state meanwhile)."""
        return self.backend._call("change the review state", self._update, keys, decide)

    def _update(self, keys: list[str], decide: Decide) -> tuple[dict[str, Any], list[dict]]:
        from redis.exceptions import WatchError  # noqa: PLC0415

        while True:
            with self.backend.client.pipeline() as pipe:
                try:
                    pipe.watch(self.state)
                    raw = pipe.hmget(self.state, keys) if keys else []
                    current = {k: json.loads(v) for k, v in zip(keys, raw) if v is not None}
                    values, entries = decide(current)
                    pipe.multi()
                    if values:
                        pipe.hset(self.state, mapping={k: json.dumps(v) for k, v in values.items()})
                    if entries:
                        pipe.rpush(self.log, *[json.dumps(e) for e in entries])
                    pipe.execute()
                    return values, entries
                except WatchError:
                    continue

    def audit(self, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` audit entries, newest first."""
        raw = self.backend._call(
            "read the audit log", self.backend.client.lrange, self.log, -limit, -1
        )
        return [json.loads(v) for v in reversed(raw)]


class RedisOutbox:
    """Outbox records in a Redis stream; one claim at a time, with a lease."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.claim_key = backend.stream + b":claim"

    def claim(self, owner: str, max_records: int, lease_s: float) -> Claim | None:
        """Claim the oldest records (or take over a claim whose lease ran out)."""
        return self.backend._call("claim outbox records", self._claim, owner, max_records, lease_s)

    def _claim(self, owner: str, max_records: int, lease_s: float) -> Claim | None:
        from redis.exceptions import WatchError  # noqa: PLC0415

        client, stream = self.backend.client, self.backend.stream
        while True:
            with client.pipeline() as pipe:
                try:
                    pipe.watch(self.claim_key)
                    held = pipe.hgetall(self.claim_key)
                    now = time.time()
                    if held and held[b"owner"].decode() != owner:
                        if float(held[b"lease_until"]) > now:
                            pipe.unwatch()
                            return None
                    if held:
                        first, last = held[b"first"], held[b"last"]
                    else:
                        entries = pipe.xrange(stream, count=max_records)
                        if not entries:
                            pipe.unwatch()
                            return None
                        first, last = entries[0][0], entries[-1][0]
                    pipe.multi()
                    pipe.hset(
                        self.claim_key,
                        mapping={
                            "first": first,
                            "last": last,
                            "owner": owner,
                            "lease_until": now + lease_s,
                        },
                    )
                    pipe.execute()
                    break
                except WatchError:
                    continue
        entries = client.xrange(stream, min=first, max=last)
        return Claim(
            name=_name(first, last),
            records=[fields[b"record"] for _, fields in entries],
            token=(first, last, [entry_id for entry_id, _ in entries]),
        )

    def complete(self, claim: Claim) -> None:
        """Delete the claimed records (their Parquet files are written)."""
        first, last, ids = claim.token

        def complete() -> None:
            client = self.backend.client
            with client.pipeline() as pipe:
                if ids:
                    pipe.xdel(self.backend.stream, *ids)
                pipe.execute()
            held = client.hgetall(self.claim_key)
            if held.get(b"first") == first and held.get(b"last") == last:
                client.delete(self.claim_key)

        self.backend._call("complete an outbox claim", complete)

    def pending(self) -> int:
        """Records waiting (each holds one customer's new transactions of a batch)."""
        backend = self.backend
        return int(backend._call("count outbox records", backend.client.xlen, backend.stream))


def _name(first: bytes, last: bytes) -> str:
    return f"{first.decode().replace('-', '_')}-{last.decode().replace('-', '_')}"


def _today_row(raw: list[bytes | None]) -> dict[str, Any] | None:
    """A customer_today row from its Redis hash fields (None: no row)."""
    if raw[0] is None:
        return None
    protos = []
    for blob in raw:
        proto = ValueProto()
        proto.ParseFromString(blob or b"")
        protos.append(proto)
    day, tx_ns, amounts, keys = protos
    return {
        "day": day.int64_val if day.HasField("int64_val") else None,
        "tx_ns": list(tx_ns.int64_list_val.val),
        "amounts": list(amounts.double_list_val.val),
        "tx_keys": list(keys.int64_list_val.val),
    }
