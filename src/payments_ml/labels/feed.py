"""The labels feed: reports of (``transaction_id``, ``is_fraud``, ``reported_at``,
``source``) that arrive from other systems (chargebacks, analysts) after the transaction;
analysts' reports also carry ``analyst`` and ``note`` (`ANALYST_SCHEMA`, written by
`append_reports`).

The rule (docs/design.md, "Labels"):

- A transaction's label is its **latest report**, used from that report's
  ``reported_at`` on (never before: no leakage). The same verdict reported again later
  changes nothing (the label was known from the first report).
- A report that contradicts an earlier one supersedes it; the earlier one goes to the
  quarantine with the reason, so the conflict stays visible. Two contradicting reports
  at the same instant cannot be ordered: both go to the quarantine.
- A report for a transaction that is not in ``raw_transactions``, one dated before its
  transaction, or one with a missing field goes to the quarantine with the reason.
- Where the feed holds reports, it is the source of every label: a transaction without
  a report is genuine as far as anyone knows. Without a feed, the labels of the
  transaction rows (``is_fraud``, ``label_available_at``) are used, as before.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

FEED_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("is_fraud", pa.bool_()),
        ("reported_at", pa.timestamp("ns", tz="UTC")),
        ("source", pa.string()),
    ]
)
FEED_COLUMNS = FEED_SCHEMA.names
# The nullable columns of a person's report (docs/design.md, "Labels"); files written by
# data_gen and ingest may lack them, and a reader of the four above never needs them.
ANALYST_SCHEMA = FEED_SCHEMA.append(pa.field("analyst", pa.string())).append(
    pa.field("note", pa.string())
)
SOURCES = ("generator", "ingest", "chargeback", "analyst")
PARTITION = "report_date"  # the feed's Hive partition: the UTC day of reported_at
# One row per labelled transaction: its label, when it became known, and what the
# merchant windows need of the transaction.
LABEL_COLUMNS = [
    "transaction_id",
    "is_fraud",
    "label_available_at",
    "source",
    "merchant_id",
    "event_timestamp",
]
QUARANTINE_REASON = "quarantine_reason"
NS_DAY = 86_400 * 10**9


def with_report_date(reports: pd.DataFrame) -> pd.DataFrame:
    """``reports`` with the feed's partition column (``report_date``, ISO day of
    ``reported_at``)."""
    stamps = pd.to_datetime(reports["reported_at"], utc=True)
    if stamps.isna().any():  # no day to name: strftime's NaN, as before
        return reports.assign(**{PARTITION: stamps.dt.strftime("%Y-%m-%d").astype(object)})
    days = stamps.to_numpy("datetime64[ns]").view(np.int64) // NS_DAY
    distinct, position = np.unique(days, return_inverse=True)  # strftime per day, not per row
    names = pd.to_datetime(distinct * NS_DAY, utc=True).strftime("%Y-%m-%d").to_numpy(object)
    return reports.assign(**{PARTITION: names[position.reshape(-1)]})


def chargebacks(transactions: pd.DataFrame, first_day: int, last_day: int) -> pd.DataFrame:
    """The fraud reports the transactions' own labels announce, of those that arrive on
    days ``first_day..last_day`` (day numbers): what a simulator's chargeback system
    sends (``source``: ``chargeback``).

    Args:
        transactions: ``transaction_id``, ``is_fraud``, ``label_available_at``.
    """
    at = pd.to_datetime(transactions["label_available_at"], utc=True)
    day = at.to_numpy("datetime64[ns]").view(np.int64) // NS_DAY
    arrived = transactions["is_fraud"].to_numpy(bool) & (day >= first_day) & (day <= last_day)
    reports = pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"].to_numpy(object)[arrived],
            "is_fraud": True,
            "reported_at": at[arrived].to_numpy(),
            "source": "chargeback",
        }
    )
    reports["reported_at"] = pd.to_datetime(reports["reported_at"], utc=True)
    return with_report_date(
        reports.sort_values(["reported_at", "transaction_id"], ignore_index=True)
    )


def resolve(reports: pd.DataFrame, transactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each reported transaction's label, by the rule of this module.

    Args:
        reports: Feed rows (:data:`FEED_COLUMNS`, any order, repeats allowed).
        transactions: The reported transactions found in ``raw_transactions``:
            ``transaction_id``, ``merchant_id``, ``event_timestamp``.

    Returns:
        ``(labels, quarantine)``: one row per labelled transaction (:data:`LABEL_COLUMNS`,
        sorted by id), and the reports not in effect with their ``quarantine_reason``.
    """
    reports = reports[FEED_COLUMNS].drop_duplicates(ignore_index=True)
    reports["reported_at"] = pd.to_datetime(reports["reported_at"], utc=True)
    known = transactions.drop_duplicates("transaction_id").set_index("transaction_id")
    event = pd.to_datetime(reports["transaction_id"].map(known["event_timestamp"]), utc=True)
    reasons = pd.Series(None, index=reports.index, dtype=object)
    for column in FEED_COLUMNS[:3]:
        reasons = reasons.mask(reasons.isna() & reports[column].isna(), f"missing {column}")
    unknown = reasons.isna() & event.isna()
    reasons = reasons.mask(unknown, "unknown transaction_id: not in raw_transactions")
    early = reasons.isna() & (reports["reported_at"] < event)
    reasons = reasons.mask(early, "reported before the transaction's event_timestamp")
    usable = reports[reasons.isna()]
    verdicts = usable.groupby(["transaction_id", "reported_at"])["is_fraud"].transform("nunique")
    tied = usable.index[verdicts.to_numpy() > 1]
    reasons[tied] = "contradicts another report of the same transaction at the same instant"
    labels, superseded = _latest(reports[reasons.isna()])
    reasons[superseded.index] = superseded
    labels = labels.join(known[["merchant_id", "event_timestamp"]], on="transaction_id")
    quarantine = reports[reasons.notna()].assign(**{QUARANTINE_REASON: reasons.dropna()})
    return labels[LABEL_COLUMNS].reset_index(drop=True), with_report_date(quarantine)


def _latest(reports: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The report in effect per transaction (the first report of its last verdict); and
    the reasons of the reports before it, which a contradicting one superseded."""
    ordered = reports.sort_values(["transaction_id", "reported_at"], kind="stable")
    ids = ordered["transaction_id"].to_numpy(object)
    verdict = ordered["is_fraud"].to_numpy(bool)
    new_run = np.r_[True, (ids[1:] != ids[:-1]) | (verdict[1:] != verdict[:-1])][: len(ids)]
    run = np.cumsum(new_run)
    final = run == pd.Series(run).groupby(ids).transform("max").to_numpy()
    effect = ordered[final & new_run].rename(columns={"reported_at": "label_available_at"})
    by_id = effect.set_index("transaction_id")
    stale = ordered[~final]
    reason = stale["transaction_id"].map(
        lambda i: (
            "superseded by a later contradicting report; in effect: "
            f"{'fraud' if by_id.at[i, 'is_fraud'] else 'genuine'} from "
            f"{by_id.at[i, 'label_available_at'].isoformat()} ({by_id.at[i, 'source']})"
        )
    )
    return effect, reason


def merchant_fraud_days(labels: pd.DataFrame, label_delay_days: int) -> pd.DataFrame:
    """Per merchant and day: the frauds of that day known by the snapshot that first uses
    the day (``day + label_delay_days + 1``): the merchant windows' fraud counts."""
    ns = pd.to_datetime(labels["event_timestamp"], utc=True).to_numpy("datetime64[ns]")
    day = ns.view(np.int64) // NS_DAY
    known = pd.to_datetime(labels["label_available_at"], utc=True).to_numpy("datetime64[ns]")
    counted = labels["is_fraud"].to_numpy(bool) & (
        known.view(np.int64) <= (day + label_delay_days + 1) * NS_DAY
    )
    frame = pd.DataFrame(
        {
            "merchant_id": labels["merchant_id"].to_numpy(np.int64),
            "day": day,
            "fraud_count": counted,
        }
    )
    frame = frame[counted].astype({"fraud_count": np.int64})
    return frame.groupby(["merchant_id", "day"], as_index=False, sort=True).sum()


def relabel(rows: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (with ``transaction_id``, ``is_fraud``, ``label_available_at``) with the
    feed's labels: a reported transaction takes its report's verdict and time; the others
    are genuine (as far as anyone knows). Unchanged when the feed holds no label.
    (:func:`relabel_table` on the three columns: one rule for pandas and Arrow.)"""
    if labels.empty:
        return rows
    columns = ["transaction_id", "is_fraud", "label_available_at"]
    table = pa.Table.from_pandas(rows[columns], preserve_index=False)
    known = pa.Table.from_pandas(labels[columns], preserve_index=False)
    relabelled = relabel_table(table, known).select(columns[1:]).to_pandas()
    out = rows.copy()
    out["is_fraud"] = relabelled["is_fraud"].to_numpy()
    out["label_available_at"] = relabelled["label_available_at"].to_numpy()
    return out


def relabel_table(block: pa.Table, labels: pa.Table | None) -> pa.Table:
    """:func:`relabel` on Arrow: ``block`` with the feed's labels (``labels``: the
    ``transaction_id``, ``is_fraud`` and ``label_available_at`` of
    ``transaction_labels``; None or empty: unchanged)."""
    if labels is None or not labels.num_rows:
        return block
    found = pc.index_in(block["transaction_id"], value_set=labels["transaction_id"])
    verdict = pc.fill_null(pc.take(labels["is_fraud"], found), False)
    known = block.schema.field("label_available_at").type
    at = pc.coalesce(
        pc.take(labels["label_available_at"], found).cast(known), block["label_available_at"]
    )
    block = block.set_column(block.schema.get_field_index("is_fraud"), "is_fraud", verdict)
    return block.set_column(
        block.schema.get_field_index("label_available_at"), "label_available_at", at
    )


def append_reports(root: str, reports: pd.DataFrame, prefix: str = "analyst") -> list[str]:
    """Add reports to the feed durably, before anyone is told they are recorded: one new
    file per report day (``report_date=D/<prefix>-<unique>.parquet``), written under a
    hidden name, flushed to disk and renamed, so a reader sees a whole file or none.

    Args:
        root: The feed's folder (local path or a URI pyarrow understands).
        reports: Rows of :data:`ANALYST_SCHEMA` (``analyst``, ``note`` may be missing).

    Returns:
        The files written.
    """
    frame = reports.assign(reported_at=pd.to_datetime(reports["reported_at"], utc=True))
    for column in ANALYST_SCHEMA.names[len(FEED_COLUMNS) :]:
        if column not in frame:
            frame[column] = None
    frame = with_report_date(frame)
    fs, base = pafs.FileSystem.from_uri(root if "://" in root else Path(root).resolve().as_uri())
    written = []
    for day, rows in frame.groupby(PARTITION, sort=True):
        table = pa.Table.from_pandas(
            rows[ANALYST_SCHEMA.names], schema=ANALYST_SCHEMA, preserve_index=False
        )
        folder = f"{base}/{PARTITION}={day}"
        name = f"{prefix}-{pd.Timestamp.now(tz='UTC').value}-{uuid.uuid4().hex[:8]}.parquet"
        _write_whole(fs, table, folder, name)
        written.append(f"{folder}/{name}")
    return written


def _write_whole(fs: pafs.FileSystem, table: pa.Table, folder: str, name: str) -> None:
    """``table`` as ``folder/name``: hidden while written, on disk before the rename (a
    local disk: fsync of the file and the folder; object stores put whole objects)."""
    fs.create_dir(folder, recursive=True)
    hidden = f"{folder}/.{name}.tmp"
    if isinstance(fs, pafs.LocalFileSystem):
        with open(hidden, "wb") as out:
            pq.write_table(table, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(hidden, f"{folder}/{name}")
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return
    with fs.open_output_stream(hidden) as out:
        pq.write_table(table, out)
    fs.move(hidden, f"{folder}/{name}")
