"""Data quality per day of transactions: what arrived, how clean it was, what was unusual.

The metrics look at everything that arrived for a day, valid and quarantined rows
together (the contract moves nulls and duplicates to quarantine, so valid rows alone
would always look clean). They are computed in two steps so the heavy one can run in
parallel on Ray Data blocks:

1. :func:`day_partials` reduces one block (any subset of rows) to one row per day:
   counts, null counts, sums, a fine log-spaced histogram of amounts and 64-bit hashes
   of the transaction ids.
2. :func:`daily_quality` combines the partials of every block into the day table and
   derives rates, quantiles and comparisons with the trailing days.

Amount quantiles come from the histogram (log-spaced bins, ``bins_per_decade`` per
factor of ten: 100 gives quantiles within about 1.2 %); duplicates from the id hashes
(a false duplicate needs a 64-bit collision, about 1e-8 for a million ids).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from payments_ml.contracts import CONTRACT_COLUMNS  # their null rates are measured
from payments_ml.labels.feed import relabel_table
from payments_ml.monitoring import psi as psi_lib
from payments_ml.monitoring.alerts import Alert, Rule, check, iso_utc

logger = logging.getLogger(__name__)

QUANTILES = {"amount_p50": 0.5, "amount_p95": 0.95, "amount_p99": 0.99}


def amount_edges(histogram: Mapping[str, float]) -> np.ndarray:
    """Log-spaced edges of the amount histogram from ``min``, ``max``, ``bins_per_decade``."""
    low, high = float(histogram["min"]), float(histogram["max"])
    per_decade = int(histogram["bins_per_decade"])
    if not 0 < low < high or per_decade < 1:
        raise ValueError(
            "monitoring.quality.amount_histogram needs 0 < min < max and bins_per_decade >= 1, "
            f"got min={low}, max={high}, bins_per_decade={per_decade}"
        )
    return np.geomspace(low, high, round(np.log10(high / low) * per_decade) + 1)


def require_contract_columns(names: list[str], quarantined: bool) -> None:
    """Raise, naming the dataset and what to do, when a contract column is missing."""
    missing = [c for c in CONTRACT_COLUMNS if c not in names]
    if missing:
        raise ValueError(
            f"{'transactions_quarantine' if quarantined else 'raw_transactions'} lacks "
            f"contract columns {missing}; regenerate it (`kedro run --pipelines data_gen`) "
            "or map them in the ingest parameters"
        )


def day_partials(
    block: pa.Table,
    *,
    quarantined: bool,
    edges: np.ndarray,
    as_of_ns: int,
    labels: pa.Table | None = None,
) -> pa.Table:
    """One row per day of ``block``: the additive pieces of the day's quality metrics.

    Args:
        block: Transactions (contract columns; ``event_date`` or else ``event_timestamp``
            gives the day).
        quarantined: Whether the rows come from the quarantine (they count as arrived,
            never as valid).
        edges: Edges of the amount histogram (:func:`amount_edges`).
        as_of_ns: The run's moment (ns since the epoch): a label available later is
            pending (a fraud counts once its label is available).
        labels: ``transaction_labels`` (Arrow): the feed's labels replace the rows' own.

    Raises:
        ValueError: When a contract column is missing.
    """
    require_contract_columns(block.column_names, quarantined)
    block = block if quarantined else relabel_table(block, labels)
    encoded = pc.dictionary_encode(_event_dates(block)).combine_chunks()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    n_days = len(encoded.dictionary)
    columns: dict[str, Any] = {
        "event_date": encoded.dictionary,
        "quarantined": pa.array(np.full(n_days, quarantined)),
        "rows": _count(codes, None, n_days),
    }
    for name in CONTRACT_COLUMNS:
        nulls = pc.is_null(block[name], nan_is_null=True).to_numpy(zero_copy_only=False)
        columns[f"nulls_{name}"] = _count(codes, nulls, n_days)
    valid = not quarantined
    pending = _nanoseconds(block["label_available_at"]) > as_of_ns
    fraud = _bools(block["is_fraud"]) & valid & ~pending  # known by the run, not later
    columns["frauds"] = _count(codes, fraud, n_days)
    columns["labels_pending"] = _count(codes, pending & valid, n_days)
    amount = pc.fill_null(block["amount"], np.nan).to_numpy(zero_copy_only=False)
    usable = valid & (amount > 0)
    columns["amount_count"] = _count(codes, usable, n_days)
    columns["amount_sum"] = np.bincount(codes[usable], amount[usable], n_days).astype(np.float64)
    columns["amount_min"], columns["amount_max"] = _min_max(codes[usable], amount[usable], n_days)
    n_bins = len(edges) + 1
    bins = np.searchsorted(edges, amount[usable], side="right")
    hist = np.bincount(codes[usable] * n_bins + bins, minlength=n_days * n_bins)
    columns["amount_hist"] = _lists(hist, np.full(n_days, n_bins))
    ids = block["transaction_id"]
    has_id = ~pc.is_null(ids).to_numpy(zero_copy_only=False)
    hashes = pd.util.hash_array(
        ids.filter(pa.array(has_id)).to_numpy(zero_copy_only=False), categorize=False
    )
    id_codes = codes[has_id]
    order = np.argsort(id_codes, kind="stable")
    columns["id_hashes"] = _lists(hashes[order], np.bincount(id_codes, minlength=n_days))
    return pa.table(columns)


def combine_partials(tables: list[pa.Table], n_amount_bins: int) -> pd.DataFrame:
    """Sum the partials of every block into one row per day (``event_date`` sorted).

    Returns:
        Day counts (``rows_arrived``, ``rows_valid``, ``rows_quarantined``, null counts,
        ``frauds``, ``labels_pending``, ``duplicate_rows``, amount sums), with the amount
        histogram of each day in the column ``amount_hist`` (numpy arrays).
    """
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pd.DataFrame(columns=["event_date", "rows_arrived"])
    partials = pa.concat_tables(tables)
    scalars = partials.drop_columns(["amount_hist", "id_hashes"]).to_pandas()
    scalars["event_date"] = scalars["event_date"].astype(str)
    scalars["rows_quarantined"] = scalars["rows"].where(scalars["quarantined"], 0)
    sums = scalars.drop(columns=["quarantined", "amount_min", "amount_max"]).groupby(
        "event_date", sort=True
    )
    days = sums.sum().rename(columns={"rows": "rows_arrived"})
    bounds = scalars.groupby("event_date", sort=True)
    days["amount_min"] = bounds["amount_min"].min()
    days["amount_max"] = bounds["amount_max"].max()
    days["rows_valid"] = days["rows_arrived"] - days["rows_quarantined"]
    position = days.index.get_indexer(scalars["event_date"])
    flat = partials["amount_hist"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
    hist = np.zeros((len(days), n_amount_bins), dtype=np.int64)
    np.add.at(hist, position, flat.reshape(-1, n_amount_bins))
    hashes = partials["id_hashes"].combine_chunks()
    days["duplicate_rows"] = _duplicates(hashes, position, len(days))
    days["amount_hist"] = list(hist)
    return days.reset_index()


def daily_quality(
    days: pd.DataFrame, edges: np.ndarray, as_of: dt.datetime, params: Mapping[str, Any]
) -> pd.DataFrame:
    """The day table: rates, amount distribution and comparisons with the trailing days.

    Calendar days between the first and the last one that received no row at all are
    added with ``rows_arrived`` 0, so a missing day shows up as a volume drop.

    Args:
        days: :func:`combine_partials` output.
        edges: The amount histogram's edges.
        as_of: The run's moment: a day is ``complete`` ``grace_hours`` after its end.
        params: ``monitoring.quality``: ``grace_hours``, ``baseline_days``,
            ``min_baseline_days``, ``psi_bins``.
    """
    days = _every_calendar_day(days)
    start = pd.to_datetime(days["event_date"], utc=True)
    complete_at = start + pd.Timedelta(days=1) + pd.Timedelta(hours=params["grace_hours"])
    out = pd.DataFrame({"event_date": days["event_date"], "weekday": start.dt.day_name()})
    out["complete"] = (complete_at <= pd.Timestamp(as_of)).to_numpy()
    for column in ("rows_arrived", "rows_valid", "rows_quarantined", "duplicate_rows"):
        out[column] = days[column].astype(np.int64)
    arrived = out["rows_arrived"].where(out["rows_arrived"] > 0)
    out["quarantine_rate"] = out["rows_quarantined"] / arrived
    out["duplicate_rate"] = out["duplicate_rows"] / arrived
    for name in CONTRACT_COLUMNS:
        out[f"null_rate_{name}"] = days[f"nulls_{name}"] / arrived
    valid = out["rows_valid"].where(out["rows_valid"] > 0)
    out["fraud_rate"] = days["frauds"] / valid
    out["labels_pending"] = days["labels_pending"].astype(np.int64)
    amounts = days["amount_count"].where(days["amount_count"] > 0)
    out["amount_mean"] = days["amount_sum"] / amounts
    out["amount_min"] = days["amount_min"].where(amounts.notna())
    for column, q in QUANTILES.items():
        out[column] = [
            _hist_quantile(h, edges, lo, hi, q) if n else np.nan
            for h, lo, hi, n in zip(
                days["amount_hist"],
                days["amount_min"],
                days["amount_max"],
                days["amount_count"],
                strict=True,
            )
        ]
    out["amount_max"] = days["amount_max"].where(amounts.notna())
    out["row_count_ratio"] = _volume_ratio(out, params)
    out["fraud_rate_ratio"] = _fraud_rate_ratio(out, params)
    out["amount_psi"] = _amount_psi(out, days["amount_hist"], params)
    return out


def apply_late_rows(
    daily: pd.DataFrame, state: Mapping[str, Any], as_of: dt.datetime
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Count late-arriving rows against what earlier runs saw, and update that memory.

    A row is *late* when it arrives in a day that an earlier monitoring run had already
    checked as complete. The state remembers, per complete day, how many rows had
    arrived when a run first checked it (``rows``) and at the latest check
    (``last_rows``). ``late_rows`` counts rows added since the first check,
    ``late_rows_new`` those added since the previous run. A day checked for the first
    time has no late rows by definition. A day whose count went down was rewritten
    (e.g. regenerated): its memory restarts from the new count.

    Returns:
        The table with ``late_rows``, ``late_rows_new`` and ``late_rate``, and the new
        state.
    """
    seen: dict[str, Any] = dict(state.get("days", {}))
    stamp = iso_utc(as_of)
    late, new = [], []
    for day, rows, complete in daily[["event_date", "rows_arrived", "complete"]].itertuples(
        index=False
    ):
        before = seen.get(day)
        if before is not None and rows < before["rows"]:
            logger.info(
                "Day %s now has %d rows, fewer than the %d first checked: it was rewritten, "
                "its late-row count restarts",
                day,
                rows,
                before["rows"],
            )
            del seen[day]
            before = None
        if before is None:
            late.append(0)
            new.append(0)
            if complete:
                seen[day] = {"rows": int(rows), "last_rows": int(rows), "checked_at": stamp}
            continue
        late.append(int(rows - before["rows"]))
        new.append(int(max(rows - before["last_rows"], 0)))
        seen[day] = {**before, "last_rows": int(rows), "last_checked_at": stamp}
    out = daily.copy()
    out["late_rows"] = np.asarray(late, dtype=np.int64)
    out["late_rows_new"] = np.asarray(new, dtype=np.int64)
    out["late_rate"] = out["late_rows"] / out["rows_arrived"].where(out["rows_arrived"] > 0)
    return out, {"days": dict(sorted(seen.items()))}


def quality_alerts(
    daily: pd.DataFrame, rules: Mapping[str, Rule], params: Mapping[str, Any]
) -> list[Alert]:
    """Alerts of the day table: rules on its columns, over the latest ``alert_days`` days.

    ``null_rate`` judges every contract column's ``null_rate_<column>`` (except
    ``null_rate_ignore``: columns null by design). ``late_rate`` judges the days that
    received late rows since the previous run, however old (late rows of an old day are
    news only once). Rules on other metrics are not for this table and are skipped.
    """
    window = daily.tail(int(params["alert_days"]))
    found: list[Alert | None] = []
    for rule in rules.values():
        if rule.metric == "null_rate":
            ignored = set(params.get("null_rate_ignore") or [])
            for column in (c for c in CONTRACT_COLUMNS if c not in ignored):
                found += _judge_days(rule, window, f"null_rate_{column}", column=column)
        elif rule.metric == "late_rate":
            fresh = daily[daily["late_rows_new"] > 0]
            found += _judge_days(rule, fresh, "late_rate", extra=("late_rows", "late_rows_new"))
        elif rule.metric in daily.columns:
            found += _judge_days(rule, window, rule.metric)
    return [alert for alert in found if alert is not None]


def _judge_days(
    rule: Rule,
    days: pd.DataFrame,
    metric_column: str,
    *,
    column: str | None = None,
    extra: tuple[str, ...] = (),
) -> list[Alert | None]:
    return [
        check(
            rule,
            None if pd.isna(row[metric_column]) else float(row[metric_column]),
            day=row["event_date"],
            column=column,
            context={"rows_arrived": int(row["rows_arrived"])}
            | {key: int(row[key]) for key in extra},
        )
        for row in days.to_dict("records")
    ]


def _event_dates(block: pa.Table) -> pa.ChunkedArray:
    if "event_date" in block.column_names:
        days = block["event_date"]
        if not pa.types.is_string(days.type):
            days = pc.cast(days, pa.string())
    else:
        days = pc.strftime(block["event_timestamp"], format="%Y-%m-%d")
    return pc.fill_null(days, "")


def _nanoseconds(column: Any) -> np.ndarray:
    """Timestamps as int64 ns since the epoch; null as the smallest int64 (never later)."""
    if pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("ns", tz=column.type.tz))
    ns = pc.cast(column, pa.int64())
    return pc.fill_null(ns, np.iinfo(np.int64).min).to_numpy(zero_copy_only=False)


def _bools(column: Any) -> np.ndarray:
    return np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), dtype=bool)


def _count(codes: np.ndarray, mask: np.ndarray | None, n: int) -> np.ndarray:
    if mask is None:
        return np.bincount(codes, minlength=n).astype(np.int64)
    return np.bincount(codes[mask], minlength=n).astype(np.int64)


def _min_max(codes: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, codes, values)
    np.maximum.at(high, codes, values)
    return np.where(np.isinf(low), np.nan, low), np.where(np.isinf(high), np.nan, high)


def _lists(values: np.ndarray, lengths: np.ndarray) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))


def _duplicates(hashes: pa.Array, position: np.ndarray, n_days: int) -> np.ndarray:
    """Per day, the ids already seen that day or on an earlier day.

    The lists (one per block and day) are put in day order, not their values: then one
    hash-table pass (``duplicated``) marks every arrival after the first. At 10 M rows,
    5x faster than a stable argsort of the values and ``np.unique`` (the driver's serial
    part of data quality)."""
    order = np.argsort(position, kind="stable")  # days in date order: the first arrival wins
    ordered = pc.take(hashes, pa.array(order))
    lengths = pc.list_value_length(ordered).to_numpy(zero_copy_only=False)
    values = ordered.flatten().to_numpy(zero_copy_only=False)
    day = np.repeat(position[order], lengths)
    seen = pd.Series(values).duplicated().to_numpy()
    return np.bincount(day[seen], minlength=n_days)


def _every_calendar_day(days: pd.DataFrame) -> pd.DataFrame:
    dated = days[days["event_date"] != ""]
    if len(dated) < len(days):
        logger.warning(
            "%d row(s) without an event date are left out of the day table",
            int(days.loc[days["event_date"] == "", "rows_arrived"].sum()),
        )
    if dated.empty:
        return dated.reset_index(drop=True)
    calendar = pd.date_range(dated["event_date"].min(), dated["event_date"].max(), freq="D")
    full = dated.set_index("event_date").reindex(calendar.strftime("%Y-%m-%d"))
    counts = [c for c in full.columns if c not in ("amount_hist", "amount_min", "amount_max")]
    full[counts] = full[counts].fillna(0)
    n_bins = len(dated["amount_hist"].iloc[0])
    full["amount_hist"] = [
        h if isinstance(h, np.ndarray) else np.zeros(n_bins, np.int64) for h in full["amount_hist"]
    ]
    return full.rename_axis("event_date").reset_index()


def _hist_quantile(hist: np.ndarray, edges: np.ndarray, low: float, high: float, q: float) -> float:
    """Quantile ``q`` of a log-spaced histogram, interpolated geometrically within its bin."""
    cumulative = np.cumsum(hist)
    target = q * cumulative[-1]
    b = int(np.searchsorted(cumulative, target, side="left"))
    left = edges[b - 1] if b > 0 else low
    right = edges[b] if b < len(edges) else high
    left, right = max(left, low), min(right, high)
    below = cumulative[b - 1] if b > 0 else 0
    share = (target - below) / hist[b] if hist[b] else 0.0
    return float(left * (right / left) ** share) if left > 0 else float(left)


def _trailing(i: int, baseline_days: int) -> np.ndarray:
    """Positions of the days in the ``baseline_days`` before day ``i`` (table in date order)."""
    return np.arange(max(0, i - baseline_days), i)


def _volume_ratio(out: pd.DataFrame, params: Mapping[str, Any]) -> np.ndarray:
    """Rows of a complete day / median of the same weekday over the trailing days."""
    ratio = np.full(len(out), np.nan)
    rows = out["rows_arrived"].to_numpy(np.float64)
    complete = out["complete"].to_numpy(bool)
    weekday = out["weekday"].to_numpy()
    for i in range(len(out)):
        if not complete[i]:
            continue
        past = _trailing(i, params["baseline_days"])
        past = past[complete[past] & (weekday[past] == weekday[i])]
        if len(past) and np.median(rows[past]) > 0:
            ratio[i] = rows[i] / np.median(rows[past])
    return ratio


def _fraud_rate_ratio(out: pd.DataFrame, params: Mapping[str, Any]) -> np.ndarray:
    """Fraud rate / trailing median, on days whose labels are all known by the run."""
    ratio = np.full(len(out), np.nan)
    rate = out["fraud_rate"].to_numpy(np.float64)
    final = (out["labels_pending"].to_numpy() == 0) & out["complete"].to_numpy(bool)
    final &= ~np.isnan(rate)
    for i in np.flatnonzero(final):
        past = _trailing(i, params["baseline_days"])
        past = past[final[past]]
        if len(past) >= params["min_baseline_days"] and np.median(rate[past]) > 0:
            ratio[i] = rate[i] / np.median(rate[past])
    return ratio


def _amount_psi(out: pd.DataFrame, hists: pd.Series, params: Mapping[str, Any]) -> np.ndarray:
    """PSI of the day's amounts against the pooled amounts of the trailing days."""
    value = np.full(len(out), np.nan)
    stacked = np.stack(hists.to_list()) if len(hists) else np.empty((0, 0))
    has_rows = stacked.sum(axis=1) > 0 if len(stacked) else np.empty(0, bool)
    for i in np.flatnonzero(has_rows):
        past = _trailing(i, params["baseline_days"])
        past = past[has_rows[past]]
        if len(past) < params["min_baseline_days"]:
            continue
        reference = stacked[past].sum(axis=0)
        value[i] = psi_lib.psi_of_histograms(reference, stacked[i], params["psi_bins"])
    return value
