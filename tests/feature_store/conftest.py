"""A Feast repository in a temporary folder, over snapshots of generated transactions."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from payments_ml.features import windows as fw
from payments_ml.pipelines.features.nodes import snapshot_table, with_run_date

DELAY = 7


@pytest.fixture(scope="module")
def snapshots(generated_transactions) -> dict[str, pd.DataFrame]:
    tx = generated_transactions
    until = int(fw.day_of(fw.to_ns(tx["event_timestamp"])).max()) + 1
    merchant_days = fw.merchant_daily(tx, DELAY)
    return {
        "customer": fw.customer_snapshot_rows(fw.customer_daily(tx), until),
        "merchant": fw.merchant_snapshot_rows(merchant_days, DELAY, until),
        "merchant_days": merchant_days,
        "training_set": fw.feature_rows(tx, merchant_days, DELAY),
    }


def feast_config(root: Any, online_store: dict | None = None) -> dict[str, Any]:
    return {
        "project": "payments_ml_test",
        "registry": str(root / "registry.db"),
        "offline_store": {"type": "file"},
        "online_store": online_store
        or {"type": "packed_sqlite", "path": str(root / "online_store.db")},
        "sources": {
            "customer_snapshots": str(root / "customer_snapshots"),
            "merchant_snapshots": str(root / "merchant_snapshots"),
            "scored_transactions": str(root / "scored_transactions"),
        },
    }


@pytest.fixture(scope="module", params=["packed_sqlite", "sqlite"])
def repo(request, tmp_path_factory, snapshots) -> dict[str, Any]:
    """Snapshot files written as the pipeline writes them, definitions applied.

    Every test runs against the project's packed SQLite store and Feast's own.
    """
    return make_repo(tmp_path_factory.mktemp("feast"), snapshots, request.param)


def make_repo(root: Any, snapshots: dict[str, pd.DataFrame], online_type: str) -> dict[str, Any]:
    """A Feast repository under ``root`` with the snapshot sources and definitions applied."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    config = feast_config(root, {"type": online_type, "path": str(root / "online_store.db")})
    # Laid out as the pipeline writes them: Hive partitions by the night that wrote them.
    for name, key in (("customer", "customer_id"), ("merchant", "merchant_id")):
        rows = with_run_date(snapshots[name], key)
        table = snapshot_table(rows) if name == "customer" else pa.Table.from_pandas(rows)
        pq.write_to_dataset(table, root / f"{name}_snapshots", partition_cols=["run_date"])
    store = fs.open_store(config)
    store.apply(list(fs.definitions(config).values()))
    return {"config": config, "store": store, "root": root}


def assert_bad_input_writes_nothing(store: Any, merchant_rows: pd.DataFrame) -> None:
    """A missing column or a wrong type is named, and the online store keeps its values."""
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    view = store.get_feature_view("merchant_snapshot")
    good = fs.latest_rows(merchant_rows, "merchant_id")
    fs.write_online(store, view, good)
    ids = good["merchant_id"].to_numpy()[:20]
    before = fs.read_online(store, "merchant_snapshot", "merchant_id", ids)

    changed = good.assign(merchant_tx_count_1d=good["merchant_tx_count_1d"] + 1000)
    with pytest.raises(ValueError, match="missing column 'merchant_fraud_rate_7d'"):
        fs.write_online(store, view, changed.drop(columns="merchant_fraud_rate_7d"))
    with pytest.raises(
        ValueError, match="column 'merchant_tx_count_30d' should be Int64, found object"
    ):
        fs.write_online(store, view, changed.assign(merchant_tx_count_30d="many"))
    with pytest.raises(ValueError, match="column 'merchant_fraud_rate_1d' should be Float64"):
        fs.write_online(store, view, changed.assign(merchant_fraud_rate_1d="high"))
    pd.testing.assert_frame_equal(
        fs.read_online(store, "merchant_snapshot", "merchant_id", ids), before
    )
