"""Nodes of the ingest pipeline: an external transactions file onto the contract, on Ray.

The source is read and mapped (:func:`map_table`) by Ray tasks: a CSV file in byte ranges,
each parsed by pyarrow in its task; Parquet by Ray Data, block by block. Uniqueness
of ``transaction_id`` spans the whole file, so the mapped rows are hash-partitioned by
transaction id before the pandera contract checks them; the valid rows are then grouped
by day (one Parquet file per day, rows in time order, the same on every re-run).

A labels file (``ingest.labels``) is read and mapped the same way (:func:`map_labels`)
into the labels feed's reports, by report day; without one the feed is emptied.

With ``ingest.run_date`` the file is one night's (``kedro run --pipelines daily_ingest``):
the catalog replaces only that night's partitions, the rows dated on other days are
quarantined (counted by day in the summary), the uniqueness of ids spans the file, and
the night's entities are merged into the stored catalogues (:func:`derive_catalogues`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pa_fs
import ray

from payments_ml.contracts import QUARANTINE_REASON, contract_reasons
from payments_ml.datasets.csv_ranges import CsvOptions, csv_ranges, map_csv_ranges
from payments_ml.datasets.file_tasks import tasks_for_cluster
from payments_ml.datasets.shuffle import shuffle
from payments_ml.ingest.mapping import (
    CONTRACT_COLUMNS,
    LABELS_FILE_SCHEMA,
    OTHER_DAY,
    SOURCE_RECORD,
    IngestPlan,
    LabelsPlan,
    SourcePlan,
    map_labels,
    map_table,
    plan_ingest,
    source_files,
    utc_dates,
)
from payments_ml.labels import feed
from payments_ml.monitoring.alerts import Alert, append_alerts, new_run_id

logger = logging.getLogger(__name__)

__all__ = [
    "derive_catalogues",
    "entity_stats",
    "ingest_labels",
    "ingest_transactions",
    "plan_ingest",
    "summarize",
]

# Among rows sharing a transaction_id the first in this order stays valid: the earliest.
_VALID_ORDER = [
    ("event_timestamp", "ascending"),
    ("transaction_id", "ascending"),
    ("amount", "ascending"),
    ("customer_id", "ascending"),
    ("card_id", "ascending"),
    ("merchant_id", "ascending"),
]
_QUARANTINE_ORDER = [
    ("event_date", "ascending"),
    ("event_timestamp", "ascending"),
    ("transaction_id", "ascending"),
    (QUARANTINE_REASON, "ascending"),
    (SOURCE_RECORD, "ascending"),
]
_LABELS_ORDER = [
    ("reported_at", "ascending"),
    ("transaction_id", "ascending"),
    (QUARANTINE_REASON, "ascending"),
    (SOURCE_RECORD, "ascending"),
]
_EARLY_DAY = "1990-01-01"  # data before this usually means a wrong timestamp unit or origin
# The feed's reports as written: FEED_SCHEMA and the report day they are partitioned by.
REPORTS_SCHEMA = feed.FEED_SCHEMA.append(pa.field(feed.PARTITION, pa.string()))
_NO_LABELS_FILE = (
    "no labels file (ingest.labels: null): the labels feed was emptied, so the "
    "transactions' own labels are used"
)
_NO_LABELS_TONIGHT = (
    "no labels file (ingest.labels: null): no report arrived on run_date, its partition "
    "of the labels feed was emptied (the other days' reports stay)"
)
_ENTITY_KEYS = {
    "customers": ["customer_id"],
    "cards": ["card_id", "customer_id"],  # a card's customer is decided across blocks
    "merchants": ["merchant_id"],
}


def ingest_transactions(
    plan: IngestPlan, labels_summary: dict[str, Any] | None = None
) -> tuple[ray.data.Dataset, ray.data.Dataset, dict[str, Any], dict[str, pd.DataFrame]]:
    """Read the source, map it onto the contract and split valid from quarantined rows.

    Every source row ends up in exactly one output: a row that fails the mapping or a
    contract check goes to the quarantine with each failed check named in
    ``quarantine_reason``; of rows sharing a ``transaction_id`` the earliest stays valid.

    Args:
        plan: From :func:`plan_ingest`.
        labels_summary: :func:`ingest_labels`'s counts, kept in the summary under
            ``labels`` (the pipeline writes the feed before the transactions this way:
            a stage ordered after ``raw_transactions`` finds the feed that goes with them).

    Returns:
        ``(valid, quarantine, summary, stats)``: the valid rows (one block per group of
        whole days, in time order), the quarantined rows (one block), the counts, and
        the :func:`entity_stats` of the valid rows for :func:`derive_catalogues`.

    Raises:
        RuntimeError: When valid + quarantined differs from the rows read.
    """
    start = time.perf_counter()
    mapped, rows_read = _read_and_map(plan)
    partitions = plan.partitions or tasks_for_cluster()
    schema = plan.arrow_schema()
    pieces = shuffle(mapped, _transaction_groups, partitions, name="ingest_split_by_transaction")
    check = _check_partition.options(num_returns=3, name="ingest_check_contract")
    refs = zip(*(check.remote(schema, *part) for part in pieces), strict=True)
    valid_refs, quarantine_refs, count_refs = refs
    counts = ray.get(list(count_refs))
    summary = summarize(counts, plan) | {"labels": labels_summary}
    if summary["rows"] != rows_read:
        raise RuntimeError(
            f"ingest lost rows: read {rows_read}, valid + quarantined = {summary['rows']}"
        )
    gate_quarantine(summary, plan)
    by_day = shuffle(
        list(valid_refs),
        _day_groups,
        partitions,
        _day_buckets(counts, partitions),
        name="ingest_split_by_day",
    )
    concat = _concat_sorted.options(name="ingest_concat_sorted")
    valid_blocks = [concat.remote(schema, _VALID_ORDER, True, *part) for part in by_day]
    quarantine_block = concat.remote(schema, _QUARANTINE_ORDER, False, *quarantine_refs)
    # The catalogues' figures, per block while the rows are in memory: no second read.
    block_stats = ray.get([_block_stats.remote(block, plan) for block in valid_blocks])
    stats = {
        name: pd.concat([b[name] for b in block_stats], ignore_index=True) for name in _ENTITY_KEYS
    }
    _log_summary(summary, time.perf_counter() - start)
    return (
        ray.data.from_arrow_refs(valid_blocks),
        ray.data.from_arrow_refs([quarantine_block]),
        summary,
        stats,
    )


def _read_and_map(
    plan: SourcePlan, mapper: Callable[..., pa.Table] = map_table
) -> tuple[list[ray.ObjectRef], int]:
    """The source read and mapped by ``mapper`` (:func:`map_table`, or :func:`map_labels`
    for a labels file): (blocks, rows read). A CSV source is cut into byte ranges of about
    ``batch_rows`` rows, each read and mapped by one task (:mod:`~payments_ml.datasets.
    csv_ranges`); a Parquet source is read by Ray Data, in batches of ``batch_rows``."""
    start = time.perf_counter()
    filesystem = plan.filesystem()
    paths = source_files(plan) or [plan.path]
    if filesystem is not None:
        paths = [p.split("://", 1)[-1] for p in paths]
    if plan.format == "csv":
        mapped, rows_read = _read_csv(plan, paths, filesystem or pa_fs.LocalFileSystem(), mapper)
    else:
        mapped, rows_read = _read_parquet(plan, paths, filesystem, mapper)
    logger.info(
        "Read and mapped %d rows of %s in %d block(s) in %.1f s",
        rows_read,
        plan.path,
        len(mapped),
        time.perf_counter() - start,
    )
    return mapped, rows_read


def _read_csv(
    plan: SourcePlan, paths: list[str], filesystem: pa_fs.FileSystem, mapper: Callable
) -> tuple[list[ray.ObjectRef], int]:
    options = CsvOptions(**plan.csv_options())
    ranges = csv_ranges(paths, filesystem, options, plan.batch_rows)
    refs = map_csv_ranges(ranges, filesystem, options, mapper, plan=plan)
    return [table for table, _ in refs], sum(ray.get([rows for _, rows in refs]))


def _read_parquet(
    plan: SourcePlan, paths: list[str], filesystem: pa_fs.FileSystem | None, mapper: Callable
) -> tuple[list[ray.ObjectRef], int]:
    # Batches of batch_rows: the reader's blocks bundled, so the shuffle moves a few
    # large pieces instead of many small ones.
    mapped_rows = (
        ray.data.read_parquet(paths, filesystem=filesystem)
        .select_columns(plan.source_columns)  # pushed down into the reader
        .map_batches(
            mapper, batch_format="pyarrow", batch_size=plan.batch_rows, fn_kwargs={"plan": plan}
        )
        .materialize()
    )
    return mapped_rows.to_arrow_refs(), mapped_rows.count()  # count: the blocks' metadata


def ingest_labels(plan: IngestPlan) -> tuple[ray.data.Dataset, ray.data.Dataset, dict[str, Any]]:
    """The labels file mapped onto the labels feed: its reports, the rows that did not map,
    and their counts.

    Every row of the file ends up in exactly one output: a report, or the quarantine with
    each failed check named (no id, no or an unparseable time, an unknown verdict). Which
    report is in effect is the labels stage's decision (docs/design.md, "Labels").

    Without a labels file (``ingest.labels: null``) the feed is replaced by an empty one:
    the reports an earlier data_gen run left for its own transactions must not label the
    ingested ones, and the labels stage reads an empty feed as "no feed", so the
    transactions' own labels are used. A night (``run_date``) replaces only its own
    partition of the feed: without a labels file, no report arrived that night.

    Args:
        plan: From :func:`plan_ingest`.

    Returns:
        ``(reports, quarantine, summary)``: the reports (:data:`REPORTS_SCHEMA`, each
        block in report time order), the rows that did not map (one block), the counts.

    Raises:
        RuntimeError: When reports + quarantined differs from the rows read.
    """
    if plan.labels is None:
        note = _NO_LABELS_FILE if plan.run_date is None else _NO_LABELS_TONIGHT
        logger.info("Labels: %s", note)
        return (
            ray.data.from_arrow(REPORTS_SCHEMA.empty_table()),
            ray.data.from_arrow(LABELS_FILE_SCHEMA.empty_table()),
            {"source": None, "note": note},
        )
    if "is_fraud" in plan.columns:
        logger.warning(
            "ingest.columns.is_fraud and ingest.labels are both set: where the labels file "
            "holds reports they decide every label (a transaction without one is genuine)"
        )
    mapped, rows_read = _read_and_map(plan.labels, map_labels)
    split = _split_reports.options(num_returns=3, name="ingest_split_reports")
    blocks = mapped or [ray.put(LABELS_FILE_SCHEMA.empty_table())]
    report_refs, quarantine_refs, count_refs = zip(
        *(split.remote(block) for block in blocks), strict=True
    )
    summary = summarize_labels(ray.get(list(count_refs)), plan.labels)
    if summary["rows"] != rows_read:
        raise RuntimeError(
            f"ingest lost label rows: read {rows_read}, reports + quarantined = {summary['rows']}"
        )
    _log_labels(summary)
    concat = _concat_sorted.options(name="ingest_concat_labels_quarantine")
    quarantine = concat.remote(LABELS_FILE_SCHEMA, _LABELS_ORDER, False, *quarantine_refs)
    return (
        ray.data.from_arrow_refs(list(report_refs)),
        ray.data.from_arrow_refs([quarantine]),
        summary,
    )


def summarize_labels(counts: list[dict[str, Any]], plan: LabelsPlan) -> dict[str, Any]:
    """Figures of a labels file from its blocks' counts (``quarantine_by_check`` as in
    :func:`summarize`)."""
    by_day = _totals(counts, "reports_by_day")
    reports, quarantined = sum(by_day.values()), sum(p["quarantined"] for p in counts)
    days = sorted(by_day)
    return {
        "source": plan.path,
        "format": plan.format,
        "rows": reports + quarantined,
        "reports": reports,
        "frauds": sum(p["frauds"] for p in counts),
        "quarantined": quarantined,
        "quarantine_by_check": _totals(counts, "reasons", checks=True),
        "report_days": len(days),
        "first_report_day": days[0] if days else None,
        "last_report_day": days[-1] if days else None,
    } | _night(counts, plan)


def _night(counts: list[dict[str, Any]], plan: SourcePlan) -> dict[str, Any]:
    """A night's ``run_date`` and its file's rows dated on other days, per day (nothing
    for a whole ingest: its summary stays as it was)."""
    if plan.run_date is None:
        return {}
    return {"run_date": plan.run_date, "other_days": _totals(counts, "other_days")}


def _totals(counts: list[dict[str, Any]], key: str, checks: bool = False) -> dict[str, int]:
    """The blocks' ``key`` counts (value -> rows) added up, by value; with ``checks``, a
    quarantine reason of several checks (``a; b``) counts under each of them."""
    totals: dict[str, int] = {}
    for part in counts:
        for value, n in part[key].items():
            for name in value.split("; ") if checks else [value]:
                totals[name] = totals.get(name, 0) + n
    return dict(sorted(totals.items()))


class QuarantineTooLarge(ValueError):
    """More of the source was quarantined than ``ingest.quarantine.fail_share`` allows."""


def gate_quarantine(summary: dict[str, Any], plan: IngestPlan) -> Alert | None:
    """Judge the quarantined share of an ingest against ``ingest.quarantine``.

    Above ``warn_share``: a warning, and an alert appended to the alert log (when
    ``plan.alerts_path`` is set), which the dashboard shows. Above ``fail_share``: a
    critical alert, then :class:`QuarantineTooLarge` naming the count of each failed
    check, before any transaction is written.

    Returns:
        The alert raised, or ``None`` when the share is within ``warn_share``.
    """
    rows, quarantined = summary["rows"], summary["quarantined"]
    share = quarantined / rows if rows else 0.0
    warn, fail = plan.quarantine_shares
    if share <= warn:
        return None
    failed = share > fail
    key, limit = ("fail_share", fail) if failed else ("warn_share", warn)
    checks = "; ".join(f"{check}: {n}" for check, n in summary["quarantine_by_check"].items())
    message = (
        f"ingest of {plan.path}: {quarantined} of {rows} rows quarantined ({share:.1%}, above "
        f"ingest.quarantine.{key} {limit:.1%}); by check: {checks}"
    )
    alert = Alert(
        severity="critical" if failed else "warning",
        metric="ingest_quarantine_share",
        value=share,
        threshold=limit,
        rule=f"ingest_quarantine_{key.removesuffix('_share')}",
        message=message,
        day=plan.run_date,
        context={"source": plan.path, "quarantine_by_check": summary["quarantine_by_check"]},
    )
    if plan.alerts_path:
        now = dt.datetime.now(dt.UTC)
        append_alerts(plan.alerts_path, [alert.record(new_run_id(now), now)])
    if failed:
        raise QuarantineTooLarge(
            f"{message}. No transaction was written: fix the source, or raise "
            "ingest.quarantine.fail_share if this is expected."
        )
    logger.warning("%s", message)
    return alert


def summarize(counts: list[dict[str, Any]], plan: IngestPlan) -> dict[str, Any]:
    """Figures of an ingest from the partitions' counts; the same on every re-run.

    ``quarantine_by_check`` counts rows per failed check: a row failing two checks
    counts under both, so the counts add up to at least ``quarantined``.
    """
    by_day = _totals(counts, "valid_by_day")
    by_check = _totals(counts, "reasons", checks=True)
    valid = sum(by_day.values())
    quarantined = sum(p["quarantined"] for p in counts)
    frauds = sum(p["frauds"] for p in counts)
    days = sorted(by_day)
    label = plan.columns.get("label_available_at")
    fraud = plan.columns.get("is_fraud")
    return {
        "source": plan.path,
        "format": plan.format,
        "rows": valid + quarantined,
        "valid": valid,
        "quarantined": quarantined,
        "quarantine_by_check": by_check,
        "days": len(days),
        "first_day": days[0] if days else None,
        "last_day": days[-1] if days else None,
        **_night(counts, plan),
        "frauds": frauds,
        "fraud_rate": frauds / valid if valid else 0.0,
        "is_fraud": f"source column {fraud!r}" if fraud else "false: the labels file decides",
        "label_available_at": (
            f"source column {label!r} (missing: event_timestamp + {plan.label_delay_days:g} days)"
            if label
            else f"event_timestamp + {plan.label_delay_days:g} days"
        ),
    }


def entity_stats(transactions: pd.DataFrame, plan: IngestPlan) -> dict[str, pd.DataFrame]:
    """Per customer, card (with its customer) and merchant of some valid transactions:
    first and last time, count, amount sum, and the catalogue attributes at the first time.

    Stats of disjoint sets of transactions combine into those of their union
    (:func:`derive_catalogues`): each Ray block of the ingest computes its own.
    """
    ordered = transactions.sort_values("event_timestamp", kind="stable")
    attrs = _attributes(plan)
    return {name: _partials(ordered, keys, attrs[name]) for name, keys in _ENTITY_KEYS.items()}


def derive_catalogues(
    stats: dict[str, pd.DataFrame],
    plan: IngestPlan,
    customers: pd.DataFrame | None = None,
    cards: pd.DataFrame | None = None,
    merchants: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Customer, card and merchant catalogues derived from the valid transactions.

    Each entity gets its first and last transaction time, transaction count and amounts,
    plus the carried columns ``ingest.catalogues`` names (and ``source_<id>`` for hashed
    ids), as of the entity's first transaction. A card belongs to the customer of its
    first transaction; the card a customer uses most is their primary one.

    A night's ingest (``plan.run_date``) merges its entities into the stored catalogues
    instead of replacing them: the stored rows are combined with the night's figures as
    the blocks of one ingest are (earliest first-seen values, stored first on a tie;
    counts and amounts added), so nights ingested in order give the catalogues of one
    ingest of their rows. The night's figures of an entity whose stored last transaction
    is on or after the night's day are left out: they are counted already (a rerun of the
    night changes nothing) or come from a day before the entity's last (a backfill or a
    corrected day, which only a whole ingest recounts).

    Args:
        stats: :func:`entity_stats` of the blocks of valid transactions, concatenated.
        plan: From :func:`plan_ingest`.
        customers: The stored catalogue (empty or None: none yet); read on nights only.
        cards: Likewise.
        merchants: Likewise.

    Returns:
        ``(customers, cards, merchants)``, sorted by id.

    Raises:
        ValueError: On a night, when a stored catalogue lacks the ingest's columns (it was
            written by data_gen, or with other ``ingest.catalogues``).
    """
    attrs = _attributes(plan)
    if plan.run_date is None:
        return _catalogues(stats["customers"], stats["cards"], stats["merchants"], attrs)
    stored = {"customers": customers, "cards": cards, "merchants": merchants}
    stored = {k: v for k, v in stored.items() if v is not None and len(v)}
    fresh = {
        name: _fresh(stats[name], stored.get(name), name, plan.run_date, attrs[name])
        for name in _ENTITY_KEYS
    }
    partials = {
        name: pd.concat([_stored_partials(stored[name], name, attrs[name]), fresh[name]])
        if name in stored
        else fresh[name]
        for name in _ENTITY_KEYS
    }
    merged = dict(
        zip(_ENTITY_KEYS, _catalogues(*(partials[n] for n in _ENTITY_KEYS), attrs), strict=True)
    )
    for name in ("customers", "merchants"):
        if name in stored:
            merged[name] = _stored_averages(merged[name], stored[name], fresh[name], name)
    return merged["customers"], merged["cards"], merged["merchants"]


def _fresh(
    night: pd.DataFrame, stored: pd.DataFrame | None, name: str, run_date: str, attrs: list[str]
) -> pd.DataFrame:
    """The night's partials of entities the stored catalogue has not counted up to the
    night: those it lacks, or whose stored last transaction is before the night's day."""
    if stored is None:
        return night
    key = _ENTITY_KEYS[name][0]
    needed = [key, "first_seen", "last_seen", "n_transactions", *attrs]
    needed += ["avg_amount"] if name != "cards" else ["customer_id"]
    missing = [c for c in needed if c not in stored.columns]
    if missing:
        raise ValueError(
            f"ingest.run_date={run_date}: the stored {name} catalogue lacks {missing}, so "
            f"the night's {name} cannot be merged into it (it was written by data_gen, or "
            "with other ingest.catalogues); ingest the history whole first (without "
            "run_date), then the nights"
        )
    counted = stored.loc[stored["last_seen"] >= pd.Timestamp(run_date, tz="UTC"), key]
    return night[~night[key].isin(counted)]


def _stored_partials(stored: pd.DataFrame, name: str, attrs: list[str]) -> pd.DataFrame:
    """A stored catalogue as the partials of its entities (:func:`entity_stats`' columns)."""
    keys = _ENTITY_KEYS[name]
    n = stored["n_transactions"]
    amounts = stored["avg_amount"] * n if "avg_amount" in stored else pd.Series(0.0, stored.index)
    return stored.assign(amount_sum=amounts)[
        [*keys, "first_seen", "last_seen", "n_transactions", "amount_sum", *attrs]
    ]


def _stored_averages(
    merged: pd.DataFrame, stored: pd.DataFrame, fresh: pd.DataFrame, name: str
) -> pd.DataFrame:
    """``avg_amount`` as stored for the entities the night added nothing to: an average
    times its count divided again may round differently, and a rerun must change no byte."""
    key = _ENTITY_KEYS[name][0]
    kept = stored[~stored[key].isin(fresh[key])].set_index(key)["avg_amount"]
    return merged.assign(avg_amount=merged[key].map(kept).fillna(merged["avg_amount"]))


# -- reading and mapping ------------------------------------------------------------------


def _transaction_groups(table: pa.Table, partitions: int) -> np.ndarray:
    """By transaction id hash: every copy of an id lands in the same partition."""
    ids = table["transaction_id"].to_numpy(zero_copy_only=False).astype(object)
    return (pd.util.hash_array(ids) % np.uint64(partitions)).astype(np.int64)


def _day_groups(table: pa.Table, partitions: int, buckets: dict[str, int]) -> np.ndarray:
    """By day, into contiguous groups of whole days (one file per day when written)."""
    codes, days = pd.factorize(table["event_date"].to_numpy(zero_copy_only=False))
    lookup = np.array([buckets[d] for d in days] + [0], dtype=np.int64)
    return lookup[codes]


@ray.remote
def _check_partition(schema: pa.Schema, *pieces: pa.Table) -> tuple[pa.Table, pa.Table, dict]:
    """Contract check of one partition: (valid rows, quarantined rows, counts)."""
    table = pa.concat_tables(pieces) if pieces else schema.empty_table()
    mapped = pc.is_null(table[QUARANTINE_REASON])
    failed = table.filter(pc.invert(mapped))
    good = _keepers_first(table.filter(mapped))
    frame = good.select([*CONTRACT_COLUMNS, "event_date"]).to_pandas()
    reasons = contract_reasons(frame)
    bad = reasons.notna().to_numpy()
    valid = good.filter(pa.array(~bad)).drop_columns([QUARANTINE_REASON, SOURCE_RECORD])
    rejected = good.filter(pa.array(bad))
    rejected = rejected.set_column(
        rejected.schema.get_field_index(QUARANTINE_REASON),
        QUARANTINE_REASON,
        pa.array(reasons[bad].tolist(), pa.string()),
    )
    quarantine = pa.concat_tables([failed, rejected])
    days = pc.value_counts(valid["event_date"]).to_pylist()
    reason_counts = pc.value_counts(quarantine[QUARANTINE_REASON]).to_pylist()
    counts = {
        "valid_by_day": {d["values"]: d["counts"] for d in days},
        "quarantined": quarantine.num_rows,
        "reasons": {r["values"]: r["counts"] for r in reason_counts},
        "frauds": int(pc.sum(valid["is_fraud"]).as_py() or 0),
        "other_days": _other_days(failed, "event_timestamp"),
    }
    return valid, quarantine, counts


@ray.remote
def _split_reports(table: pa.Table) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """One block of a mapped labels file: (reports with their report day, in time order;
    the rows that did not map; counts)."""
    mapped = pc.is_null(table[QUARANTINE_REASON])
    reports = feed.with_report_date(table.filter(mapped).select(feed.FEED_COLUMNS).to_pandas())
    reports = pa.Table.from_pandas(reports, schema=REPORTS_SCHEMA, preserve_index=False)
    reports = reports.sort_by([("reported_at", "ascending"), ("transaction_id", "ascending")])
    quarantine = table.filter(pc.invert(mapped))
    days = pc.value_counts(reports[feed.PARTITION]).to_pylist()
    reasons = pc.value_counts(quarantine[QUARANTINE_REASON]).to_pylist()
    counts = {
        "reports_by_day": {d["values"]: d["counts"] for d in days},
        "quarantined": quarantine.num_rows,
        "reasons": {r["values"]: r["counts"] for r in reasons},
        "frauds": int(pc.sum(reports["is_fraud"]).as_py() or 0),
        "other_days": _other_days(quarantine, "reported_at"),
    }
    return reports, quarantine, counts


def _other_days(quarantine: pa.Table, time_column: str) -> dict[str, int]:
    """Quarantined rows of a night's file dated on another day: rows per UTC day."""
    other = quarantine.filter(pc.match_substring(quarantine[QUARANTINE_REASON], OTHER_DAY))
    days = pc.value_counts(utc_dates(other[time_column])).to_pylist() if other.num_rows else []
    return {d["values"]: d["counts"] for d in days}


def _keepers_first(table: pa.Table) -> pa.Table:
    """Rows whose transaction_id repeats, moved to the end in :data:`_VALID_ORDER`.

    The contract keeps the first of duplicates: the earliest then, whatever the order
    the blocks arrived in. Other rows keep their order (sorting all is 10x slower).
    """
    ids = table["transaction_id"]
    counts = pc.value_counts(ids)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if not len(repeated):
        return table
    dup = pc.is_in(ids, value_set=repeated)
    return pa.concat_tables([table.filter(pc.invert(dup)), table.filter(dup).sort_by(_VALID_ORDER)])


def _day_buckets(counts: list[dict[str, Any]], partitions: int) -> dict[str, int]:
    """Day -> output block: contiguous runs of whole days of about equal row counts."""
    by_day: dict[str, int] = {}
    for part in counts:
        for day, n in part["valid_by_day"].items():
            by_day[day] = by_day.get(day, 0) + n
    total = max(sum(by_day.values()), 1)
    buckets, before = {}, 0
    for day in sorted(by_day):
        buckets[day] = min(partitions - 1, before * partitions // total)
        before += by_day[day]
    return buckets


@ray.remote
def _concat_sorted(
    schema: pa.Schema, order: list[tuple[str, str]], valid: bool, *tables: pa.Table
) -> pa.Table:
    if not tables:
        table = schema.empty_table()
        return table.drop_columns([QUARANTINE_REASON, SOURCE_RECORD]) if valid else table
    return pa.concat_tables(tables).sort_by(order)


def _log_summary(summary: dict[str, Any], seconds: float) -> None:
    logger.info(
        "Ingested %d rows in %.1f s (%.0f rows/s): %d valid over %d day(s) (%s .. %s), "
        "%d quarantined, fraud rate %.3f%%",
        summary["rows"],
        seconds,
        summary["rows"] / max(seconds, 1e-9),
        summary["valid"],
        summary["days"],
        summary["first_day"],
        summary["last_day"],
        summary["quarantined"],
        100 * summary["fraud_rate"],
    )
    for check, n in summary["quarantine_by_check"].items():
        logger.info("  quarantined %d row(s): %s", n, check)
    _warn_other_days("transaction", summary)
    if summary["rows"] and summary["valid"] == 0:
        logger.warning(
            "No row of %s met the contract: check ingest.columns and ingest.timestamp "
            "(data/08_reporting/ingest_summary.json counts the failed checks)",
            summary["source"],
        )
    elif summary["first_day"] and summary["first_day"] < _EARLY_DAY:
        logger.warning(
            "Transactions start on %s: check ingest.timestamp.unit and origin",
            summary["first_day"],
        )


def _warn_other_days(what: str, summary: dict[str, Any]) -> None:
    """A night's file holding rows of other days: how many, and which days."""
    other = summary.get("other_days")
    if other:
        logger.warning(
            "%s: %d %s(s) dated on other days than run_date %s were quarantined (%s); "
            "ingest each day's rows with its own run_date",
            summary["source"],
            sum(other.values()),
            what,
            summary["run_date"],
            ", ".join(f"{day}: {n}" for day, n in other.items()),
        )


def _log_labels(summary: dict[str, Any]) -> None:
    logger.info(
        "Labels file %s: %d row(s), %d report(s) (%d fraud) over %d report day(s) "
        "(%s .. %s), %d quarantined",
        *(summary[k] for k in ("source", "rows", "reports", "frauds", "report_days")),
        summary["first_report_day"],
        summary["last_report_day"],
        summary["quarantined"],
    )
    for check, n in summary["quarantine_by_check"].items():
        logger.warning("  labels file: quarantined %d row(s): %s", n, check)
    _warn_other_days("report", summary)
    if summary["rows"] and not summary["reports"]:
        logger.warning(
            "No row of %s mapped onto a report: check ingest.labels.columns, .timestamp and "
            ".label (data/08_reporting/ingest_summary.json counts the failed checks)",
            summary["source"],
        )


# -- entity catalogues -------------------------------------------------------------------


def _attributes(plan: IngestPlan) -> dict[str, list[str]]:
    """Columns each catalogue takes from its entity's first transaction."""
    attrs = {}
    for name, keys in _ENTITY_KEYS.items():
        source_id = [f"source_{keys[0]}"] if keys[0] in plan.hashed_ids else []
        attrs[name] = list(dict.fromkeys([*source_id, *plan.catalogues.get(name, ())]))
    return attrs


@ray.remote
def _block_stats(table: pa.Table, plan: IngestPlan) -> dict[str, pd.DataFrame]:
    columns = ["event_timestamp", "customer_id", "card_id", "merchant_id", "amount"]
    columns += sorted({a for group in _attributes(plan).values() for a in group})
    return entity_stats(table.select(columns).to_pandas(), plan)


def _partials(ordered: pd.DataFrame, keys: list[str], attrs: list[str]) -> pd.DataFrame:
    """Per key: first/last time, count, amount sum and the attributes at the first time.

    Args:
        ordered: Transactions in time order.
        keys: The entity's key columns.
        attrs: Columns to take from the entity's first transaction.
    """
    stats = ordered.groupby(keys, sort=False).agg(
        first_seen=("event_timestamp", "min"),
        last_seen=("event_timestamp", "max"),
        n_transactions=("amount", "size"),
        amount_sum=("amount", "sum"),
    )
    first = ordered.drop_duplicates(keys).set_index(keys)[attrs]
    return stats.join(first).reset_index()


def _combine(partials: pd.DataFrame, keys: list[str], attrs: list[str]) -> pd.DataFrame:
    ordered = partials.sort_values("first_seen", kind="stable")
    stats = ordered.groupby(keys, sort=True).agg(
        first_seen=("first_seen", "min"),
        last_seen=("last_seen", "max"),
        n_transactions=("n_transactions", "sum"),
        amount_sum=("amount_sum", "sum"),
    )
    first = ordered.drop_duplicates(keys).set_index(keys)[attrs]
    return stats.join(first).reset_index()


def _catalogues(
    customers: pd.DataFrame,
    cards: pd.DataFrame,
    merchants: pd.DataFrame,
    attrs: dict[str, list[str]],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    cards = _card_catalogue(_combine(cards, ["card_id", "customer_id"], attrs["cards"]), attrs)
    customers = _customer_catalogue(
        _combine(customers, ["customer_id"], attrs["customers"]), cards, attrs
    )
    merchants = _merchant_catalogue(_combine(merchants, ["merchant_id"], attrs["merchants"]), attrs)
    logger.info(
        "Catalogues from the transactions: %d customers, %d cards, %d merchants",
        len(customers),
        len(cards),
        len(merchants),
    )
    return customers, cards, merchants


def _card_catalogue(pairs: pd.DataFrame, attrs: dict[str, list[str]]) -> pd.DataFrame:
    """Cards from (card, customer) stats: a card belongs to the customer of its first
    transaction, its figures count them all; a customer's busiest card is primary."""
    shared = pairs["card_id"].duplicated(keep=False)
    if shared.any():
        logger.warning(
            "%d card_id(s) appear with more than one customer_id; each card is given to "
            "the customer of its first transaction",
            pairs.loc[shared, "card_id"].nunique(),
        )
    owner = pairs.sort_values("first_seen", kind="stable").drop_duplicates("card_id")
    totals = pairs.groupby("card_id").agg(
        first_seen=("first_seen", "min"),
        last_seen=("last_seen", "max"),
        n_transactions=("n_transactions", "sum"),
    )
    cards = (
        owner[["card_id", "customer_id", *attrs["cards"]]]
        .set_index("card_id")
        .join(totals)
        .reset_index()
        .sort_values("card_id", ignore_index=True)
    )
    busiest = cards.sort_values(
        ["customer_id", "n_transactions", "card_id"], ascending=[True, False, True]
    ).drop_duplicates("customer_id")
    cards["is_primary"] = cards["card_id"].isin(busiest["card_id"])
    columns = ["card_id", "customer_id", "first_seen", "last_seen", "n_transactions"]
    return cards[[*columns, "is_primary", *attrs["cards"]]]


def _customer_catalogue(
    customers: pd.DataFrame, cards: pd.DataFrame, attrs: dict[str, list[str]]
) -> pd.DataFrame:
    n_cards = cards.groupby("customer_id").size()
    days = (
        customers["last_seen"].dt.floor("D") - customers["first_seen"].dt.floor("D")
    ).dt.days + 1
    customers = customers.assign(
        n_cards=customers["customer_id"].map(n_cards).fillna(0).astype(np.int64),
        avg_amount=customers["amount_sum"] / customers["n_transactions"],
        tx_per_day=customers["n_transactions"] / days,
    )
    columns = ["customer_id", "first_seen", "last_seen", "n_transactions", "n_cards"]
    return customers[[*columns, "avg_amount", "tx_per_day", *attrs["customers"]]]


def _merchant_catalogue(merchants: pd.DataFrame, attrs: dict[str, list[str]]) -> pd.DataFrame:
    total = max(int(merchants["n_transactions"].sum()), 1)
    merchants = merchants.assign(
        avg_amount=merchants["amount_sum"] / merchants["n_transactions"],
        popularity=merchants["n_transactions"] / total,
    )
    columns = ["merchant_id", "first_seen", "last_seen", "n_transactions", "avg_amount"]
    return merchants[[*columns, "popularity", *attrs["merchants"]]]
