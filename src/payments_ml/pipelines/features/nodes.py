"""Nodes of the features pipeline: one shuffle by customer, then vectorised work per partition."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import ray

from payments_ml.contracts import ARROW_TYPES
from payments_ml.datasets import arrow_schema, to_pandas
from payments_ml.datasets.shuffle import concat_tables, customer_groups, shuffle
from payments_ml.features import windows as fw
from payments_ml.features.definitions import KEY_COLUMNS, LABEL_COLUMNS
from payments_ml.structured_logging import partition_scope

logger = logging.getLogger(__name__)

_INPUT_COLUMNS = [*KEY_COLUMNS, *LABEL_COLUMNS]  # what the feature code reads


def partition_by_customer(
    transactions: ray.data.Dataset, params: dict[str, Any]
) -> ray.data.Dataset:
    """Hash-partition the transactions by customer: one block per partition, histories whole.

    The window features need each customer's whole history in one batch: one shuffle
    (`payments_ml.datasets.shuffle`), then one task per partition concatenates its
    pieces. The result stays in the object store for both uses downstream.
    Partitions: ``features.partitions``, or 2 per cluster CPU.
    """
    _check_source(transactions.schema())
    partitions = int(
        params.get("partitions") or 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    )
    blocks = transactions.select_columns(_INPUT_COLUMNS).to_arrow_refs()
    logger.info("Shuffling %d blocks into %d customer partitions", len(blocks), partitions)
    pieces = shuffle(blocks, customer_groups, partitions, name="split_by_customer")
    concat = concat_tables.options(name="concat_customer_partition")
    return ray.data.from_arrow_refs([concat.remote(*part) for part in pieces])


def _check_source(schema: Any) -> None:
    """The transactions have every column the features read, with usable types."""
    if schema is None:
        raise ValueError("raw_transactions is empty: run `kedro run --pipelines data_gen` first")
    types = {field.name: field.type for field in arrow_schema(schema)}
    expected = {name: ARROW_TYPES[name] for name in _INPUT_COLUMNS}
    for name, wanted in expected.items():
        if name not in types:
            raise ValueError(f"raw_transactions: missing column '{name}'; found {sorted(types)}")
        found = types[name]
        same_kind = (
            found == wanted
            or (
                pa.types.is_timestamp(wanted)
                and isinstance(found, pa.DataType)
                and pa.types.is_timestamp(found)
            )
            or (pa.types.is_string(wanted) and found in (pa.large_string(), pa.string()))
        )
        if not same_kind:
            raise ValueError(
                f"raw_transactions: column '{name}' should be {wanted}, found {found}; "
                "map the source onto the contract (docs/design.md, 'Data contract')"
            )


def aggregate_merchant_days(
    transactions_by_customer: ray.data.Dataset, params: dict[str, Any]
) -> pd.DataFrame:
    """Per merchant and day: transactions and frauds reported in time (small: collected)."""
    delay = _label_delay(params)
    partial = transactions_by_customer.map_batches(
        _merchant_daily,
        batch_format="pyarrow",
        batch_size=None,
        fn_kwargs={"label_delay_days": delay},
    )
    # A merchant's day is spread over the customer partitions: add the partial counts up.
    daily = to_pandas(partial).groupby(["merchant_id", "day"], as_index=False, sort=True)
    daily = daily[["tx_count", "fraud_count"]].sum()
    logger.info(
        "Merchant days: %d rows for %d merchants", len(daily), daily["merchant_id"].nunique()
    )
    return daily


def build_merchant_snapshots(merchant_days: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Merchant snapshot rows (Feast batch source), up to the day after the last data day."""
    rows = fw.merchant_snapshot_rows(
        merchant_days, _label_delay(params), _snapshot_end(merchant_days)
    )
    logger.info("Merchant snapshots: %d rows", len(rows))
    return rows


def build_customer_features(
    transactions_by_customer: ray.data.Dataset,
    merchant_days: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[ray.data.Dataset, ray.data.Dataset]:
    """Training rows and customer snapshot rows, vectorised per customer partition.

    Returns:
        ``(training_set, customer_snapshots)`` as lazy Datasets over the partitions.
    """
    delay = _label_delay(params)
    until = _snapshot_end(merchant_days)
    merchants_ref = ray.put(merchant_days)
    # Arrow batches converted by pyarrow give the feature code plain numpy dtypes.
    whole = {"batch_format": "pyarrow", "batch_size": None}
    training_set = transactions_by_customer.map_batches(
        _training_rows,
        fn_kwargs={"merchant_days": merchants_ref, "label_delay_days": delay},
        **whole,
    )
    snapshots = transactions_by_customer.map_batches(
        _customer_snapshots, fn_kwargs={"until_day": until}, **whole
    )
    return training_set, snapshots


def _merchant_daily(batch: pa.Table, label_delay_days: int) -> pd.DataFrame:
    with partition_scope(merchant_id=_id_range(batch, "merchant_id")):
        return fw.merchant_daily(batch.to_pandas(), label_delay_days)


def _training_rows(batch: pa.Table, merchant_days: Any, label_delay_days: int) -> pd.DataFrame:
    with partition_scope(customer_id=_id_range(batch, "customer_id")):
        merchants = (
            ray.get(merchant_days) if isinstance(merchant_days, ray.ObjectRef) else merchant_days
        )
        rows = fw.feature_rows(batch.to_pandas(), merchants, label_delay_days)
        ns = fw.to_ns(rows["event_timestamp"])
        # The partition column of the model input (Hive): the UTC date of the transaction.
        rows["event_date"] = pd.to_datetime(fw.day_of(ns), unit="D").strftime("%Y-%m-%d")
        return rows


def _customer_snapshots(batch: pa.Table, until_day: int | None) -> pa.Table:
    with partition_scope(customer_id=_id_range(batch, "customer_id")):
        return snapshot_table(
            fw.customer_snapshot_rows(fw.customer_daily(batch.to_pandas()), until_day)
        )


def _id_range(batch: pa.Table, column: str) -> str:
    """``min..max`` of a block's ids: the partition a failure names in the log."""
    if not batch.num_rows or column not in batch.column_names:
        return "empty"
    bounds = pc.min_max(batch[column])
    return f"{bounds['min'].as_py()}..{bounds['max'].as_py()}"


def snapshot_table(rows: pd.DataFrame) -> pa.Table:
    """Arrow with ``late_tx_ns`` as list<int64>: Ray would store arrays as tensor types."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    index = table.schema.get_field_index("late_tx_ns")
    late = pa.array([np.asarray(v, np.int64) for v in rows["late_tx_ns"]], pa.list_(pa.int64()))
    return table.set_column(index, "late_tx_ns", late)


def _snapshot_end(merchant_days: pd.DataFrame) -> int | None:
    """The day after the last day of data: the snapshot serving uses next (None: no data)."""
    return int(merchant_days["day"].max()) + 1 if len(merchant_days) else None


def _label_delay(params: dict[str, Any]) -> int:
    delay = int(params["label_delay_days"])
    if delay < 0:
        raise ValueError(f"features.label_delay_days must be >= 0, got {delay}")
    return delay


def apply_feature_store(
    feast: dict[str, Any], customer_snapshots: ray.data.Dataset, merchant_snapshots: pd.DataFrame
) -> dict[str, Any]:
    """Register the Feast definitions (entities, views, services) in the registry.

    The snapshot inputs only order this node after the sources are written.
    """
    from payments_ml.feature_store import store as fs  # noqa: PLC0415 (Feast imports slowly)

    feature_store = fs.open_store(feast)
    objects = fs.definitions(feast)
    feature_store.apply(list(objects.values()))
    logger.info("Feast definitions applied to %s: %s", feast["registry"], sorted(objects))
    return {"project": feast["project"], "objects": sorted(objects)}


def materialize_online(
    feast: dict[str, Any],
    customer_snapshots: ray.data.Dataset,
    merchant_snapshots: pd.DataFrame,
    applied: dict[str, Any],
) -> dict[str, Any]:
    """Write every entity's latest snapshot into the online store; returns rows and rows/s."""
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    feature_store = fs.open_store(feast)
    latest = customer_snapshots.map_batches(
        _latest_customer_rows, batch_format="pyarrow", batch_size=None
    )
    customers = to_pandas(latest)
    report: dict[str, Any] = {"online_store": feast["online_store"]["type"]}
    for view_name, rows, key in (
        ("customer_snapshot", fs.latest_rows(customers, "customer_id"), "customer_id"),
        ("merchant_snapshot", fs.latest_rows(merchant_snapshots, "merchant_id"), "merchant_id"),
    ):
        start = time.perf_counter()
        written = fs.write_online(feature_store, feature_store.get_feature_view(view_name), rows)
        seconds = time.perf_counter() - start
        report[view_name] = {
            "rows": written,
            "seconds": round(seconds, 3),
            "rows_per_s": round(written / seconds),
        }
        logger.info(
            "Online store: %d %s rows in %.2f s (%.0f rows/s)",
            written,
            key,
            seconds,
            written / seconds,
        )
    return report


def _latest_customer_rows(batch: pa.Table) -> pa.Table:
    from payments_ml.feature_store.store import latest_rows  # noqa: PLC0415

    return snapshot_table(latest_rows(batch.to_pandas(), "customer_id"))
