"""The feature store of a Kedro environment: configuration, definitions, online writes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from feast import FeatureStore, FeatureView, RepoConfig
from feast.infra.online_stores.helpers import get_online_store_from_config
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Int64List
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import Array, Float64, Int64

from payments_ml.config import absolute_path
from payments_ml.feature_store.entities import customer, merchant
from payments_ml.feature_store.online_store import TYPE as PACKED_SQLITE
from payments_ml.feature_store.online_store import PackedSqliteOnlineStore, provider_online_store
from payments_ml.feature_store.services import fraud_model_v1
from payments_ml.feature_store.sources import (
    customer_snapshots_source,
    customer_today_source,
    merchant_snapshots_source,
)
from payments_ml.feature_store.views import (
    customer_snapshot_fv,
    customer_today_fv,
    merchant_snapshot_fv,
)
from payments_ml.features.windows import latest_rows

logger = logging.getLogger(__name__)

# Short names for online store types in conf/<env>/feast.yml.
ONLINE_STORE_TYPES = {"packed_sqlite": PACKED_SQLITE}


def repo_settings(config: dict[str, Any], root: str | Path | None = None) -> dict[str, Any]:
    """What Feast's ``feature_store.yaml`` holds, from the ``feast`` section of
    conf/<env>/feast.yml: every local path absolute, online store types as Feast reads them.

    Relative paths are taken from ``root`` (default: the working directory, the project
    root under `kedro run`); the ``packed_sqlite`` store becomes its class path, and a
    ``redis://host:port/db`` URL becomes Feast's ``host:port,db=N`` connection string.
    """
    online = dict(config["online_store"])
    online["type"] = ONLINE_STORE_TYPES.get(online.get("type"), online.get("type"))
    # An environment may switch the type: drop the other type's settings from base.
    if online["type"] in ("sqlite", PACKED_SQLITE):
        online.pop("connection_string", None)
        online["path"] = absolute_path(online["path"], root)
    elif online.get("type") == "redis":
        online.pop("path", None)
        online["connection_string"] = _redis_connection(online["connection_string"])
    return {
        "project": config["project"],
        "registry": absolute_path(config["registry"], root),
        "provider": "local",
        "offline_store": dict(config.get("offline_store") or {"type": "file"}),
        "online_store": online,
        "entity_key_serialization_version": 3,
    }


def repo_config(config: dict[str, Any]) -> RepoConfig:
    """Feast's RepoConfig from the ``feast`` section of conf/<env>/feast.yml
    (`repo_settings`, paths from the working directory)."""
    return RepoConfig(**repo_settings(config), repo_path=str(Path.cwd()))


def definitions(config: dict[str, Any]) -> dict[str, Any]:
    """Every Feast object of the project, with source paths from the configuration."""
    sources = config["sources"]
    customer_fv = customer_snapshot_fv(
        customer_snapshots_source(absolute_path(sources["customer_snapshots"]))
    )
    merchant_fv = merchant_snapshot_fv(
        merchant_snapshots_source(absolute_path(sources["merchant_snapshots"]))
    )
    today_fv = customer_today_fv(
        customer_today_source(absolute_path(sources["scored_transactions"]))
    )
    return {
        "customer": customer,
        "merchant": merchant,
        customer_fv.name: customer_fv,
        merchant_fv.name: merchant_fv,
        today_fv.name: today_fv,
        "fraud_model_v1": fraud_model_v1(customer_fv, merchant_fv),
    }


def open_store(config: dict[str, Any]) -> FeatureStore:
    """The FeatureStore of this environment (registry and online store created on demand,
    in folders made here when they are local)."""
    repo = repo_config(config)
    local = [repo.registry.path, getattr(repo.online_store, "path", None)]
    for path in local:
        if path and "://" not in path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo)


def write_online(store: FeatureStore, view: FeatureView, rows: pd.DataFrame) -> int:
    """Write one row per entity to the online store, all or nothing.

    Every column is checked before anything is written, and the SQLite stores write the
    batch in one transaction, so a bad input leaves the store as it was. The packed SQLite
    store takes the DataFrame whole (its bulk path); other stores get Feast's proto rows.

    Args:
        store: The feature store.
        view: The feature view the rows belong to.
        rows: One row per entity: its join key, ``snapshot_ts`` and every feature.

    Returns:
        The number of entities written.

    Raises:
        ValueError: A column is missing or has the wrong type; the message names it.
    """
    join_key = store.get_entity(view.entities[0]).join_key
    _check_columns(view, rows, join_key)
    online_store = get_online_store_from_config(store.config.online_store)
    if isinstance(online_store, PackedSqliteOnlineStore):
        return online_store.write_frame(store.config, view, join_key, rows)
    keys = [
        EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(int64_val=int(v))])
        for v in rows[join_key].to_numpy(np.int64)
    ]
    values = {f.name: _to_protos(rows[f.name], f.dtype) for f in view.features}
    stamps = [t.to_pydatetime() for t in pd.to_datetime(rows["snapshot_ts"], utc=True)]
    data = [
        (key, {name: column[i] for name, column in values.items()}, stamps[i], None)
        for i, key in enumerate(keys)
    ]
    if data:
        online_store.online_write_batch(store.config, view, data, progress=None)
    return len(data)


def record_materialization(store: FeatureStore, view: FeatureView, rows: pd.DataFrame) -> None:
    """Record in the registry that the online store holds ``view``'s ``rows``, as Feast's
    own materialize does, so ``feast materialize-incremental`` goes on from their latest
    ``snapshot_ts`` (without a record it starts a year before today).

    Feast reads both ends of an interval inclusively: the next run rewrites the rows of
    that last instant, with the same values.
    """
    if rows.empty:
        return
    stamps = pd.to_datetime(rows["snapshot_ts"], utc=True)
    store.registry.apply_materialization(
        view, store.project, stamps.min().to_pydatetime(), stamps.max().to_pydatetime()
    )


def read_online(store: FeatureStore, view: str, join_key: str, ids: np.ndarray) -> pd.DataFrame:
    """One row per requested id from the online store (nulls where it has none)."""
    names = [f"{view}:{f.name}" for f in store.get_feature_view(view).features]
    rows = [{join_key: int(i)} for i in np.asarray(ids, np.int64)]
    return store.get_online_features(features=names, entity_rows=rows).to_df()


def load_day(
    store: FeatureStore,
    customer_rows: pd.DataFrame,
    merchant_rows: pd.DataFrame,
    day: str | pd.Timestamp,
) -> dict[str, int]:
    """Put the nightly snapshot of ``day`` in the online store, as that night's refresh did.

    Every entity gets its latest snapshot row at or before midnight of ``day``; entities
    whose first row is later get an empty row (no history yet), so nothing from after
    ``day`` is served. Used to replay a past day against the scorer.

    Returns:
        The rows written per view.
    """
    from payments_ml.features import windows as fw  # noqa: PLC0415

    midnight = pd.Timestamp(day)
    midnight = (midnight.tz_localize("UTC") if midnight.tz is None else midnight).normalize()
    written = {}
    for view_name, rows, key in (
        ("customer_snapshot", customer_rows, "customer_id"),
        ("merchant_snapshot", merchant_rows, "merchant_id"),
    ):
        view = store.get_feature_view(view_name)
        names = [f.name for f in view.features]
        known = latest_rows(rows[rows["snapshot_ts"] <= midnight], key)
        unseen = np.setdiff1d(rows[key].unique(), known[key].to_numpy())
        if view_name == "customer_snapshot":
            blank = pd.DataFrame({name: [None] * len(unseen) for name in names})
            empty = fw.complete_snapshot(blank)
        else:  # no transaction yet: counts 0, rates 0.0
            empty = pd.DataFrame(
                {n: np.zeros(len(unseen), float if "rate" in n else np.int64) for n in names}
            )
        empty.insert(0, key, unseen)
        empty["snapshot_ts"] = pd.Series([midnight] * len(unseen), dtype="datetime64[ns, UTC]")
        both = pd.concat([known[[key, *names, "snapshot_ts"]], empty], ignore_index=True)
        written[view_name] = write_online(store, view, both)
    return written


def clear_view(store: FeatureStore, name: str) -> None:
    """Empty one view of the online store (every entity), leaving the other views.

    Replaying a past day starts from that night's snapshot and an empty
    ``customer_today``: running state left by another replay (a later day, say) would
    make the scorer skip the replayed transactions as "yesterday's".
    """
    view = store.get_feature_view(name)
    online = provider_online_store(store)
    online.update(store.config, [view], [], [], [], partial=True)  # drop the view's rows
    online.update(store.config, [], [view], [], [], partial=True)  # and make it anew


def _check_columns(view: FeatureView, rows: pd.DataFrame, join_key: str) -> None:
    expected = {
        join_key: Int64,
        "snapshot_ts": "timestamp",
        **{f.name: f.dtype for f in view.features},
    }
    for name, dtype in expected.items():
        if name not in rows:
            raise ValueError(f"{view.name}: missing column '{name}'; found {sorted(rows.columns)}")
        column = rows[name]
        ok = {
            "timestamp": pd.api.types.is_datetime64_any_dtype(column),
            Int64: pd.api.types.is_integer_dtype(column),
            Float64: pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column),
        }.get(dtype)
        if ok is None:  # arrays
            ok = column.map(lambda v: isinstance(v, list | tuple | np.ndarray)).all()
        if not ok:
            raise ValueError(
                f"{view.name}: column '{name}' should be {dtype}, found {column.dtype}; "
                "rebuild the snapshots with `kedro run --pipelines features`"
            )


def _to_protos(column: pd.Series, dtype: Any) -> list[ValueProto]:
    if dtype == Int64:
        return [ValueProto(int64_val=v) for v in column.to_numpy(np.int64).tolist()]
    if dtype == Float64:
        return [ValueProto(double_val=v) for v in column.to_numpy(float).tolist()]
    if dtype == Array(Int64):
        return [
            ValueProto(int64_list_val=Int64List(val=np.asarray(v, np.int64).tolist()))
            for v in column
        ]
    raise ValueError(f"no online conversion for feature type {dtype}")


def _redis_connection(url: str) -> str:
    if "://" not in url:
        return url
    parsed = urlparse(url)
    parts = [f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"]
    if parsed.password:
        parts.append(f"password={parsed.password}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    if parsed.path.strip("/"):
        parts.append(f"db={parsed.path.strip('/')}")
    return ",".join(parts)
