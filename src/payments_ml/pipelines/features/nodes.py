"""Nodes of the features pipeline: one shuffle by customer, then vectorised work per partition.

Without ``features.run_date`` the nodes build everything from the whole history. With
``run_date=D`` they build what the night of D adds: D's training rows, the snapshot rows
that D's run writes, and the online rows, from the raw days the windows still need
(D - 30 .. D), each customer's last transaction before them, and the stored merchant days.
Every snapshot row has a ``run_date`` (the night that writes it: the day before its
``snapshot_ts``, or its own day for an entity's first row), so a night's output is one
partition of each dataset, and a rerun replaces exactly what it wrote. A night before the
last one built (a corrected day) is recomputed with every later night, which depend on
it; a night after a gap is refused, naming the nights to build first.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray

from payments_ml.contracts import ARROW_TYPES
from payments_ml.datasets.blocks import BlockInfo, block_info, dataset_from_blocks
from payments_ml.datasets.file_tasks import SPREAD, read_shuffle, tasks_for_cluster
from payments_ml.datasets.shuffle import concat_partition, customer_groups, split
from payments_ml.features import windows as fw
from payments_ml.features.definitions import KEY_COLUMNS, LABEL_COLUMNS, WINDOW_DAYS
from payments_ml.features.windows import iso_day
from payments_ml.labels.feed import merchant_fraud_days
from payments_ml.structured_logging import partition_scope

logger = logging.getLogger(__name__)

_INPUT_COLUMNS = [*KEY_COLUMNS, *LABEL_COLUMNS]  # what the feature code reads


def partition_by_customer(
    transactions: ray.data.Dataset,
    transaction_files: pads.Dataset | None,
    stored_merchant_days: pads.Dataset | None,
    params: dict[str, Any],
) -> ray.data.Dataset:
    """Hash-partition the transactions by customer: one block per partition, histories whole.

    The window features need each customer's whole history in one batch. The rows are
    read from ``transaction_files`` (the raw folder, opened lazily) by one task per run of
    files, which splits them by customer as it reads (``datasets.file_tasks.read_shuffle``);
    one task per partition then concatenates its pieces. The result stays in the object
    store for both uses downstream. Partitions: ``features.partitions``, or
    :func:`customer_partitions` (a night: 2 per cluster CPU). With ``run_date`` only the
    rows the nights need are read (:func:`night_rows`).
    ``transactions`` (the same folder as a Ray Dataset) is not read: it orders this node
    after the stage that writes the raw transactions.
    """
    if transaction_files is None:
        raise ValueError("raw_transactions is empty: run `kedro run --pipelines data_gen` first")
    _check_source(transaction_files.schema)
    run_day = run_day_of(params)
    if run_day is not None:
        last = last_night(run_day, _stored_merchant_days(stored_merchant_days, ["day"]))
        # Already in this process: split here, no shuffle task (a night's rows are few).
        partitions = int(params.get("partitions") or tasks_for_cluster())
        parts = night_rows(transaction_files, run_day, last, partitions)
        return dataset_from_blocks([ray.put(p) for p in parts], [block_info(p) for p in parts])
    partitions = int(params.get("partitions") or customer_partitions(transaction_files))
    logger.info(
        "Reading %d files into %d customer partitions", len(transaction_files.files), partitions
    )
    pieces = read_shuffle(
        transaction_files, _INPUT_COLUMNS, customer_groups, partitions, name="read_by_customer"
    )
    # Partitions spread over the nodes (their pieces come from every node anyway); each
    # partition's feature task then runs where its partition is.
    concat = concat_partition.options(name="concat_customer_partition", scheduling_strategy=SPREAD)
    return _dataset([concat.remote(*part) for part in pieces])


def _dataset(outputs: list[list[ray.ObjectRef]]) -> ray.data.Dataset:
    """A Dataset of tasks' ``(block, block_info)`` outputs: no metadata task per block
    (on a first run, such a task also imports Ray Data in the worker)."""
    return dataset_from_blocks([out[0] for out in outputs], ray.get([out[1] for out in outputs]))


# Rows per customer partition by default. Measured at 10 M rows on 2 CPUs (first run of
# `python -m benchmarks features`): 4 partitions of 2.6 M rows took 25 s, 6 to 16
# partitions 18.6-20 s. A task's first run on a worker touches fresh memory, which costs
# far more than its reuse; smaller partitions keep that first wave short.
ROWS_PER_PARTITION = 1_000_000


def customer_partitions(files: pads.Dataset) -> int:
    """Customer partitions for ``files``: 2 per cluster CPU, and more when that makes
    partitions over :data:`ROWS_PER_PARTITION` rows (the row count from the Parquet
    footers)."""
    return max(tasks_for_cluster(), -(-files.count_rows() // ROWS_PER_PARTITION))


def run_day_of(params: dict[str, Any]) -> int | None:
    """``features.run_date`` as a day number (None: the full build)."""
    value = params.get("run_date")
    if not value:
        return None
    try:
        return int(pd.Timestamp(str(value), tz="UTC").value // fw.NS_DAY)
    except ValueError as error:
        raise ValueError(f"features.run_date must be YYYY-MM-DD, got {value!r}") from error


def last_night(run_day: int, stored: pd.DataFrame) -> int:
    """The last night to build with ``run_day``: itself, or the last night already built
    when ``run_day`` comes before it (the later nights depend on it and are rebuilt)."""
    built = int(stored["day"].max())
    if run_day > built + 1:
        raise ValueError(
            f"features.run_date={iso_day(run_day)}: the last night built is {iso_day(built)}; "
            f"build the nights {iso_day(built + 1)}..{iso_day(run_day - 1)} first, in order "
            "(`--params features.run_date=...`), or rebuild everything without run_date"
        )
    if run_day < built:
        logger.warning(
            "Night %s comes before the last one built (%s): nights %s..%s are rebuilt",
            iso_day(run_day),
            iso_day(built),
            iso_day(run_day),
            iso_day(built),
        )
    return max(run_day, built)


def night_rows(
    files: pads.Dataset, first_night: int, last_night: int, partitions: int = 1
) -> list[pa.Table]:
    """What the nights ``first_night..last_night`` need of the raw transactions, split
    into ``partitions`` by customer: the rows of those days, and the rows of the 30 days
    before them of the customers the nights write rows for (those active on the nights,
    and those whose snapshot changes the midnight after), plus, for the customers active
    on the nights, a stand-in for their last transaction before (its time: the only thing
    the windows take from further back). Rows before the nights only feed the customer
    windows: of them, only the customer, time and amount are read, and the other columns
    are filled in after the split (:func:`_stand_ins`).
    """
    first = first_night - max(WINDOW_DAYS)
    nights = files.to_table(columns=_INPUT_COLUMNS, filter=_between(first_night, last_night))
    night_day = fw.day_of(fw.to_ns(nights["event_timestamp"].to_numpy()))
    if not (night_day == first_night).any():
        raise ValueError(
            f"no transactions on {iso_day(first_night)} in raw_transactions: generate or ingest "
            "that day first (`kedro run --pipelines data_gen --params data_gen.run_date=...`)"
        )
    earlier = files.to_table(columns=_WINDOW_COLUMNS, filter=_between(first, first_night - 1))
    # Snapshot rows of a night come from these days before it (customer_snapshot_rows).
    offsets = fw.CUSTOMER_SNAPSHOT_OFFSETS
    changing = np.zeros(last_night - first + 1, bool)  # by day - first: a lookup, not isin
    changing[[n + 1 - o - first for n in range(first_night, last_night + 1) for o in offsets]] = 1
    day = fw.day_of(fw.to_ns(earlier["event_timestamp"].to_numpy()))
    customers = earlier["customer_id"]
    active = pc.unique(nights["customer_id"]).to_numpy()
    changed = pc.unique(customers.filter(pa.array(changing[day - first]))).to_numpy()
    earlier = earlier.filter(pc.is_in(customers, pa.array(np.union1d(active, changed))))
    quiet = np.setdiff1d(active, pc.unique(earlier["customer_id"]).to_numpy())  # not in it
    pieces = [split(t, partitions) for t in (earlier, _last_before(files, first, quiet))]
    return [
        pa.concat_tables([own, *(_stand_ins(t, nights.schema) for t in before)])
        for own, *before in zip(split(nights, partitions), *pieces, strict=True)
    ]


_WINDOW_COLUMNS = ["customer_id", "event_timestamp", "amount"]  # what the customer windows read
_MERCHANT_DAY_COLUMNS = ["merchant_id", "day", "tx_count", "fraud_count"]


def _between(first_day: int, last_day: int) -> pc.Expression:
    """Rows of the days ``first_day..last_day`` (the Hive ``event_date`` partitions)."""
    return (pc.field("event_date") >= iso_day(first_day)) & (
        pc.field("event_date") <= iso_day(last_day)
    )


def _last_before(files: pads.Dataset, first_day: int, customers: np.ndarray) -> pa.Table:
    """The latest transaction time, before ``first_day``, of each customer of ``customers``
    with one (as ``customer_id``, ``event_timestamp``, and a zero ``amount``).

    The days are read backwards, a week, then twice as many days each time, and only
    until every customer is found: what a night reads depends on how long its customers
    were quiet, not on how long the history is.
    """
    stamp = files.schema.field("event_timestamp").type
    found = [
        pa.table(
            {"customer_id": pa.array([], pa.int64()), "event_timestamp_max": pa.array([], stamp)}
        )
    ]
    wanted, span = np.asarray(customers), 7
    end, oldest = first_day - 1, _first_day(files)
    while len(wanted) and end >= oldest:
        start = max(oldest, end - span + 1)
        rows = files.to_table(
            columns=["customer_id", "event_timestamp"],
            filter=_between(start, end) & pc.field("customer_id").isin(pa.array(wanted)),
        )
        found.append(rows.group_by("customer_id").aggregate([("event_timestamp", "max")]))
        wanted = np.setdiff1d(wanted, found[-1]["customer_id"].to_numpy())
        end, span = start - 1, 2 * span
    last = pa.concat_tables(found)
    return pa.table(
        {
            "customer_id": last["customer_id"],
            "event_timestamp": last["event_timestamp_max"],
            "amount": pa.array(np.zeros(last.num_rows)),
        }
    )


def _first_day(files: pads.Dataset) -> int:
    """The first day of the raw files (from their ``event_date=`` folders)."""
    days = [p.split("event_date=")[1][:10] for p in files.files if "event_date=" in p]
    return int(pd.Timestamp(min(days)).value // fw.NS_DAY) if days else 0


def _stand_ins(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` (customer, time, amount) in ``schema``, as transactions that only feed the
    customer windows: no id, merchant or label (their day is before every night's)."""
    n = rows.num_rows
    stamps = rows["event_timestamp"].cast(schema.field("event_timestamp").type)
    columns = {
        "transaction_id": pa.nulls(n),
        "event_timestamp": stamps,
        "customer_id": rows["customer_id"],
        "card_id": rows["customer_id"],
        "merchant_id": pa.array(np.full(n, -1, np.int64)),
        "amount": rows["amount"],
        "is_fraud": pa.array(np.zeros(n, bool)),
        "label_available_at": stamps,
    }
    return pa.table({f.name: columns[f.name].cast(f.type) for f in schema}, schema=schema)


def _check_source(schema: Any) -> None:
    """The transactions have every column the features read, with usable types."""
    if schema is None:
        raise ValueError("raw_transactions is empty: run `kedro run --pipelines data_gen` first")
    # In the driver only: the workers that run this module's tasks never import Ray Data
    # and Kedro's datasets (0.3 s of a first task).
    from payments_ml.datasets import arrow_schema  # noqa: PLC0415

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
    transactions_by_customer: ray.data.Dataset,
    stored_merchant_days: pads.Dataset | None,
    transaction_labels: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Per merchant and day: transactions and frauds reported in time (small: collected).

    With ``run_date``: the stored merchant days, with that day's and the later ones
    recomputed. Where the labels feed holds labels, the fraud counts of every day come
    from it (a late report updates a past day's count, before the first snapshot that
    uses the day), else from the transactions' own labels.
    """
    delay = _label_delay(params)
    run_day = run_day_of(params)
    # One task per partition (blocks already in the object store: no streaming executor).
    task = _merchant_daily.options(name="merchant_daily")
    blocks = transactions_by_customer.to_arrow_refs()
    partial = ray.get([task.remote(block, delay, run_day) for block in blocks])
    # A merchant's day is spread over the customer partitions: add the partial counts up.
    daily = fw.sum_merchant_days(
        *(np.concatenate([p[c].to_numpy() for p in partial]) for c in _MERCHANT_DAY_COLUMNS)
    )
    if run_day is not None:
        stored = _stored_merchant_days(stored_merchant_days)
        daily = pd.concat([stored[stored["day"] < run_day], daily], ignore_index=True)
        daily = daily.sort_values(["merchant_id", "day"], ignore_index=True)
    if len(transaction_labels):
        daily = _with_fraud_counts(daily, merchant_fraud_days(transaction_labels, delay))
    logger.info(
        "Merchant days: %d rows for %d merchants", len(daily), daily["merchant_id"].nunique()
    )
    return daily


def _with_fraud_counts(daily: pd.DataFrame, frauds: pd.DataFrame) -> pd.DataFrame:
    """``daily`` with its ``fraud_count`` from the labels feed's ``frauds``."""
    counts = daily.drop(columns="fraud_count").merge(frauds, on=["merchant_id", "day"], how="left")
    counts["fraud_count"] = counts["fraud_count"].fillna(0).astype(np.int64)
    return counts[daily.columns]


def _stored_merchant_days(
    files: pads.Dataset | None, columns: list[str] | None = None
) -> pd.DataFrame:
    if files is None:
        raise ValueError(
            "features.run_date builds one night on top of the stored state, and there is "
            "none yet: run the full build first (`kedro run --pipelines features`)"
        )
    table = files.to_table(columns=columns or _MERCHANT_DAY_COLUMNS)
    return table.to_pandas()


def build_merchant_snapshots(
    merchant_days: pd.DataFrame, params: dict[str, Any]
) -> ray.data.Dataset:
    """Merchant snapshot rows (Feast batch source), up to the day after the last data day
    (with ``run_date``: the rows that night, and the nights after it, write)."""
    run_day = run_day_of(params)
    rows = fw.merchant_snapshot_rows(
        merchant_days, _label_delay(params), _snapshot_end(merchant_days), run_day
    )
    rows = with_run_date(rows, "merchant_id", merchant_days.groupby("merchant_id")["day"].min())
    rows = _from_night(rows, "run_date", run_day)
    logger.info("Merchant snapshots: %d rows", len(rows))
    return ray.data.from_pandas(rows)


def build_customer_features(
    transactions_by_customer: ray.data.Dataset,
    merchant_days: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[ray.data.Dataset, ray.data.Dataset]:
    """Training rows and customer snapshot rows, vectorised per customer partition (with
    ``run_date``: that day's training rows and the snapshot rows that night writes).

    Returns:
        ``(training_set, customer_snapshots)``: Datasets over the partitions' blocks.
    """
    delay = _label_delay(params)
    run_day = run_day_of(params)
    until = _snapshot_end(merchant_days)
    merchants_ref = ray.put(merchant_days)
    blocks = transactions_by_customer.to_arrow_refs()
    if run_day is not None:  # a night: one task per partition, its customer days built once
        night = _night_features.options(num_returns=2, name="night_features")
        outputs = [night.remote(block, merchants_ref, delay, run_day, until) for block in blocks]
        return tuple(ray.data.from_arrow_refs([out[i] for out in outputs]) for i in (0, 1))
    # The training rows: one task per partition, its block written by one light task (no
    # streaming executor). The snapshot rows: lazily, when saved (the model input alone is
    # what the benchmark times against DuckDB; they cost one more customer-days pass).
    task = _training_rows.options(name="training_rows", num_returns=2)
    training_set = _dataset([task.remote(block, merchants_ref, delay) for block in blocks])
    snapshots = transactions_by_customer.map_batches(
        _customer_snapshots, fn_kwargs={"until_day": until}, batch_format="pyarrow", batch_size=None
    )
    return training_set, snapshots


@ray.remote
def _training_rows(
    batch: pa.Table, merchant_days: pd.DataFrame, label_delay_days: int
) -> tuple[pa.Table, BlockInfo]:
    with partition_scope(customer_id=_id_range(batch, "customer_id")):
        tx = _window_columns(batch)
        rows = _training_table(
            batch, tx, merchant_days=merchant_days, label_delay_days=label_delay_days
        )
        return rows, block_info(rows)


@ray.remote
def _night_features(
    batch: pa.Table, merchant_days: pd.DataFrame, label_delay_days: int, run_day: int, until: int
) -> tuple[pa.Table, pa.Table]:
    """A night's training rows and customer snapshot rows of one customer partition."""
    with partition_scope(customer_id=_id_range(batch, "customer_id")):
        tx = _window_columns(batch)
        history = fw.sorted_history(tx)
        daily = fw.customer_daily(tx, history)
        training = _training_table(
            batch,
            tx,
            (history, daily),
            merchant_days=merchant_days,
            label_delay_days=label_delay_days,
            run_day=run_day,
        )
        return training, _snapshot_rows_of(daily, until, run_day)


def _customer_snapshots(batch: pa.Table, until_day: int | None) -> pa.Table:
    with partition_scope(customer_id=_id_range(batch, "customer_id")):
        return _snapshot_rows_of(fw.customer_daily(_window_columns(batch)), until_day, None)


def _window_columns(batch: pa.Table) -> dict[str, np.ndarray]:
    """The columns the windows read, as numpy straight from Arrow (no pandas: its
    conversions and block consolidation took a third of a task, 5 s of 20 at 2.6 M rows)."""
    return {c: batch[c].to_numpy() for c in [*_WINDOW_COLUMNS, "merchant_id"]}


def _training_table(
    batch: pa.Table,
    tx: dict[str, np.ndarray],
    customer_days: tuple[fw.History, pd.DataFrame] | None = None,
    *,
    merchant_days: pd.DataFrame,
    label_delay_days: int,
    run_day: int | None = None,
) -> pa.Table:
    """The model input rows of ``batch`` (from ``run_day`` on), as Arrow built from the
    feature arrays of ``tx`` (:func:`_window_columns` of it), with the Hive partition
    column ``event_date``. ``customer_days``: its sorted history and customer days, where
    the caller needs them too."""
    history, daily = customer_days or (None, None)
    features = fw.feature_columns(
        tx, merchant_days, label_delay_days, run_day, daily=daily, history=history
    )
    rows = _day_rows(batch, run_day)
    ns = fw.to_ns(rows["event_timestamp"].to_numpy())
    return pa.table(
        {c: rows[c].cast(ARROW_TYPES[c]) for c in _INPUT_COLUMNS}
        | features
        | {"event_date": fw.iso_days(fw.day_of(ns))}
    )


def with_run_date(
    rows: pd.DataFrame, entity: str, first_day: pd.Series | None = None
) -> pd.DataFrame:
    """Snapshot rows with ``run_date``, the night that writes each: the day before its
    ``snapshot_ts`` (the night after the transactions it adds), or, for an entity's first
    row (empty windows, at its first day: ``first_day[entity]``, by default the entity's
    earliest row), that day."""
    day = fw.day_of(fw.to_ns(rows["snapshot_ts"]))
    if first_day is None:
        first = pd.Series(day).groupby(rows[entity].to_numpy()).transform("min").to_numpy()
    else:
        first = rows[entity].map(first_day).to_numpy(np.int64)
    return rows.assign(run_date=fw.iso_days(np.where(day == first, day, day - 1)))


def _from_night(rows: Any, column: str, run_day: int | None) -> Any:
    """Rows (pandas or Arrow) whose ``column`` (ISO date) is ``run_day`` or later: what
    the nights from ``run_day`` on write (everything for the full build)."""
    if run_day is None:
        return rows
    if isinstance(rows, pa.Table):
        return rows.filter(pc.greater_equal(rows[column], iso_day(run_day)))
    return rows[rows[column] >= iso_day(run_day)].reset_index(drop=True)


def _day_rows(batch: pa.Table, run_day: int | None) -> pa.Table:
    """The batch's rows of ``run_day`` and later (all of them for the full build)."""
    if run_day is None:
        return batch
    day = fw.day_of(fw.to_ns(batch["event_timestamp"].to_numpy()))
    return batch.filter(pa.array(day >= run_day))


@ray.remote
def _merchant_daily(batch: pa.Table, label_delay_days: int, run_day: int | None) -> pd.DataFrame:
    with partition_scope(merchant_id=_id_range(batch, "merchant_id")):
        rows = _day_rows(batch, run_day)
        columns = ["merchant_id", "event_timestamp", "is_fraud", "label_available_at"]
        return fw.merchant_daily({c: rows[c].to_numpy() for c in columns}, label_delay_days)


def _snapshot_rows_of(daily: pd.DataFrame, until_day: int | None, run_day: int | None) -> pa.Table:
    """Snapshot rows (Arrow, with ``run_date``) of a partition's customer days."""
    rows = fw.customer_snapshot_rows(daily, until_day, run_day)
    rows = with_run_date(rows, "customer_id", daily.groupby("customer_id")["day"].min())
    return snapshot_table(_from_night(rows, "run_date", run_day))


def _id_range(batch: pa.Table, column: str) -> str:
    """``min..max`` of a block's ids: the partition a failure names in the log."""
    if not batch.num_rows or column not in batch.column_names:
        return "empty"
    bounds = pc.min_max(batch[column])
    return f"{bounds['min'].as_py()}..{bounds['max'].as_py()}"


def snapshot_table(rows: pd.DataFrame) -> pa.Table:
    """Arrow with ``late_tx_ns`` as list<int64>: Ray would store arrays as tensor types."""
    table = pa.Table.from_pandas(rows.drop(columns="late_tx_ns"), preserve_index=False)
    lengths, values = fw.flatten_lists(rows["late_tx_ns"], len(rows))
    offsets = pa.array(np.r_[0, np.cumsum(lengths)].astype(np.int32))
    late = pa.ListArray.from_arrays(offsets, pa.array(values, pa.int64()))
    return table.add_column(rows.columns.get_loc("late_tx_ns"), "late_tx_ns", late)


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
    """Register the Feast definitions (entities, views, services) in the registry, and
    rewrite the project's ``feature_store.yaml`` so Feast's CLI reads the same store.

    The snapshot inputs only order this node after the sources are written.
    """
    from payments_ml.feature_store import repo  # noqa: PLC0415 (Feast imports slowly)
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    feature_store = fs.open_store(feast)
    objects = fs.definitions(feast)
    feature_store.apply(list(objects.values()))
    logger.info("Feast definitions applied to %s: %s", feast["registry"], sorted(objects))
    repo.write_for_run(feast)
    return {"project": feast["project"], "objects": sorted(objects)}


def materialize_online(
    feast: dict[str, Any],
    customer_snapshots: ray.data.Dataset,
    merchant_snapshots: ray.data.Dataset | pd.DataFrame,
    applied: dict[str, Any],
) -> dict[str, Any]:
    """Write every entity's latest snapshot row into the online store (the night's rows,
    with ``run_date``: an entity without one keeps what it has); returns rows and rows/s."""
    from payments_ml.datasets import to_pandas  # noqa: PLC0415 (driver only, as above)
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    feature_store = fs.open_store(feast)
    latest = customer_snapshots.map_batches(
        _latest_customer_rows, batch_format="pyarrow", batch_size=None
    )
    customers = to_pandas(latest)
    if isinstance(merchant_snapshots, ray.data.Dataset):
        merchant_snapshots = to_pandas(merchant_snapshots)
    report: dict[str, Any] = {"online_store": feast["online_store"]["type"]}
    for view_name, rows, key in (
        ("customer_snapshot", fs.latest_rows(customers, "customer_id"), "customer_id"),
        ("merchant_snapshot", fs.latest_rows(merchant_snapshots, "merchant_id"), "merchant_id"),
    ):
        start = time.perf_counter()
        view = feature_store.get_feature_view(view_name)
        written = fs.write_online(feature_store, view, rows) if len(rows) else 0
        seconds = time.perf_counter() - start
        fs.record_materialization(feature_store, view, rows)  # materialize-incremental's start
        report[view_name] = {
            "rows": written,
            "seconds": round(seconds, 3),
            "rows_per_s": round(written / seconds) if seconds else 0,
        }
        logger.info(
            "Online store: %d %s rows in %.2f s (%.0f rows/s)",
            written,
            key,
            seconds,
            written / seconds if seconds else 0,
        )
    return report


def _latest_customer_rows(batch: pa.Table) -> pa.Table:
    # Runs in Ray's workers: nothing here may import Feast (3 s per worker process).
    return snapshot_table(fw.latest_rows(batch.to_pandas(), "customer_id"))
