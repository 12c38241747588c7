"""Day-aligned window features: the nightly snapshot plus today's running part.

For a transaction at ``t`` on UTC day ``D`` (midnight), every customer window splits into
the full days before ``D`` (the *snapshot* at ``D``, computed in batch and served from the
online store) and the transactions of day ``D`` strictly before ``t`` (*today's* part,
kept up to date as transactions stream in). Merchant windows end ``label_delay_days``
before ``D`` and so are snapshot-only. Training rows are computed through exactly this
split: the same snapshot function and final combination (:func:`_customer_values`) as
serving, today's part read off the sorted history (:func:`history_customer_columns`)
where a request merges it from a stream (:func:`customer_window_columns`); a test holds
both equal bit for bit.

Everything is vectorised numpy over many entities at once; timestamps are int64
nanoseconds since the epoch (UTC).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from payments_ml.features.definitions import KEY_COLUMNS, LABEL_COLUMNS, NIGHT_HOURS, WINDOW_DAYS

NS_HOUR = 3_600 * 1_000_000_000
NS_DAY = 24 * NS_HOUR
_DAY_BITS = 21  # composite sort key: entity rank << 21 | (day - base)
_NONE = np.iinfo(np.int64).min  # "no timestamp" in int64 columns
# Up to this many rows, per-request code paths skip pandas (its fixed cost per call is
# ~100 us; a live request has a handful of rows). Results are bitwise the same.
_SMALL = 256


def to_ns(timestamps: Any) -> np.ndarray:
    """UTC timestamps (pandas/numpy/Arrow) as int64 nanoseconds."""
    if isinstance(timestamps, np.ndarray) and timestamps.dtype.kind == "M":  # naive = UTC
        return timestamps.astype("datetime64[ns]").view(np.int64)
    values = pd.Series(timestamps) if not isinstance(timestamps, pd.Series) else timestamps
    # Time-zone-aware values convert to UTC instants here (50x faster than tz_convert).
    return values.to_numpy("datetime64[ns]").view(np.int64)


def day_of(ns: np.ndarray) -> np.ndarray:
    """UTC day number (days since 1970-01-01) of nanosecond timestamps."""
    return np.floor_divide(ns, NS_DAY)


def iso_day(day: int) -> str:
    """ISO date of a day number (days since 1970-01-01)."""
    return str(dt.date(1970, 1, 1) + dt.timedelta(days=int(day)))


def iso_days(days: np.ndarray) -> np.ndarray:
    """ISO dates of day numbers, as an object array of ``str`` (one conversion per
    distinct day, not per row)."""
    days = np.asarray(days, np.int64)
    if not len(days):
        return np.zeros(0, object)
    first = int(days.min())
    names = np.array([iso_day(d) for d in range(first, int(days.max()) + 1)], object)
    return names[days - first]


class _Keys:
    """Composite (entity, day) keys over a shared entity ranking and day base."""

    def __init__(self, *entity_arrays: np.ndarray, days: list[np.ndarray]) -> None:
        self.entities = np.unique(np.concatenate([np.asarray(a, np.int64) for a in entity_arrays]))
        day_min = min((int(d.min()) for d in days if len(d)), default=0)
        self.base = day_min - 2 * max(WINDOW_DAYS) - 400  # room for look-backs of the queries

    def __call__(self, entity: np.ndarray, day: np.ndarray) -> np.ndarray:
        entity = np.asarray(entity, np.int64)
        if len(entity) <= _SMALL:  # a request: a binary search beats building a hash index
            rank = np.searchsorted(self.entities, entity)
            known = self.entities[np.minimum(rank, len(self.entities) - 1)] == entity
            rank = np.where(known, rank, -1)
        else:
            rank = pd.Index(self.entities).get_indexer(entity)  # hash: any order
        offset = np.asarray(day, np.int64) - self.base
        if len(offset) and (offset.min() < 0 or offset.max() >= 1 << _DAY_BITS):
            raise ValueError("day outside the supported range of the window keys")
        return (rank.astype(np.int64) << _DAY_BITS) | offset


# -- customers --------------------------------------------------------------------------


class History(NamedTuple):
    """Transactions sorted by customer, then time (rows at the same instant in input order):
    one sort that :func:`customer_daily` and the training rows (:func:`feature_columns`)
    share."""

    order: np.ndarray  # input position of each sorted row
    customer_id: np.ndarray
    ns: np.ndarray
    amount: np.ndarray
    day: np.ndarray
    day_starts: np.ndarray  # first row of each (customer, day): the rows of customer_daily


def sorted_history(tx: Mapping[str, Any]) -> History:
    """``tx`` (``customer_id``, ``event_timestamp``, ``amount``: a DataFrame or any mapping
    of arrays) sorted by customer, then time."""
    cust = np.asarray(tx["customer_id"], np.int64)
    ns = to_ns(tx["event_timestamp"])
    amount = np.asarray(tx["amount"], float)
    order = np.lexsort((ns, cust))
    cust, ns, amount = cust[order], ns[order], amount[order]
    day = day_of(ns)
    return History(order, cust, ns, amount, day, _group_starts(cust, day))


def customer_daily(tx: Mapping[str, Any], history: History | None = None) -> pd.DataFrame:
    """Per customer and UTC day: count, amount sum, latest timestamp, last-hour timestamps.

    Args:
        tx: Transactions with ``customer_id``, ``event_timestamp`` and ``amount`` (a
            DataFrame, or any mapping of arrays).
        history: :func:`sorted_history` of ``tx``, where the caller has it already.

    Returns:
        One row per customer and day, in that order (row ``i`` is the group starting at
        ``history.day_starts[i]``).
    """
    h = sorted_history(tx) if history is None else history
    starts, ns = h.day_starts, h.ns
    ends = np.r_[starts[1:], len(ns)]
    late = ns >= (h.day + 1) * NS_DAY - NS_HOUR
    group_of_row = np.repeat(np.arange(len(starts)), ends - starts)
    late_lists = _lists(ns[late], group_of_row[late], len(starts))
    return pd.DataFrame(
        {
            "customer_id": h.customer_id[starts],
            "day": h.day[starts],
            "tx_count": (ends - starts).astype(np.int64),
            "amount_sum": np.add.reduceat(h.amount, starts) if len(starts) else np.zeros(0),
            "last_tx_ns": ns[ends - 1],
            "late_tx_ns": late_lists,
        }
    )


def customer_snapshot(
    daily: pd.DataFrame, customer_id: np.ndarray, day: np.ndarray
) -> pd.DataFrame:
    """The full-day part of every customer window as of midnight of ``day``, per query
    (:func:`customer_snapshot_columns` as a DataFrame)."""
    return pd.DataFrame(customer_snapshot_columns(daily, customer_id, day))


def customer_snapshot_columns(
    daily: pd.DataFrame, customer_id: np.ndarray, day: np.ndarray, *, lists: bool = True
) -> dict[str, np.ndarray]:
    """The full-day part of every customer window as of midnight of ``day``, per query.

    Args:
        daily: Output of :func:`customer_daily` (any number of customers and days).
        customer_id: Queried customers.
        day: Queried UTC day numbers (the snapshot is as of that day's midnight).
        lists: Also ``last_tx_ns`` and ``late_tx_ns`` (the windows' counts and sums only,
            without).

    Returns:
        One row per query: ``tx_count_{w}d``, ``amount_sum_{w}d`` over days
        ``[day - w, day)``, ``last_tx_ns`` (latest transaction before ``day``, or a
        sentinel), ``late_tx_ns`` (transactions in the hour before midnight).
    """
    customer_id, day = np.asarray(customer_id, np.int64), np.asarray(day, np.int64)
    keys, dkey, order = _sorted_days(daily, "customer_id", customer_id, day)
    counts = np.r_[0, np.cumsum(daily["tx_count"].to_numpy()[order])]
    # Amount prefixes restart at each customer: small magnitudes, no cancellation error.
    amounts = daily["amount_sum"].to_numpy(float)[order]
    inclusive = _cumsum_within(amounts, dkey >> _DAY_BITS)
    qkey = keys(customer_id, day)
    keys(customer_id, day - max(WINDOW_DAYS))  # checks the look-back stays in range
    search = _SortedSearch(dkey, qkey)
    hi = search(0)
    rank = qkey >> _DAY_BITS

    def amount_before(k: np.ndarray) -> np.ndarray:  # the customer's amounts in rows < k
        own = (k > 0) & ((dkey[np.maximum(k - 1, 0)] >> _DAY_BITS) == rank)
        return np.where(own, inclusive[np.maximum(k - 1, 0)], 0.0)

    out: dict[str, Any] = {}
    for w in WINDOW_DAYS:
        lo = search(-w)  # key(c, day - w) = key(c, day) - w
        out[f"tx_count_{w}d"] = counts[hi] - counts[lo]
        out[f"amount_sum_{w}d"] = amount_before(hi) - amount_before(lo)
    if not lists:
        return out
    prev = hi - 1
    has_prev = (prev >= 0) & ((dkey[np.maximum(prev, 0)] >> _DAY_BITS) == rank)
    last = daily["last_tx_ns"].to_numpy(np.int64)[order]
    out["last_tx_ns"] = np.where(has_prev, last[np.maximum(prev, 0)], _NONE)
    yesterday = has_prev & (dkey[np.maximum(prev, 0)] == qkey - 1)
    # The lists by fancy indexing (one slot past the end holds the empty list): no loop.
    late = np.empty(len(order) + 1, object)
    late[:-1] = daily["late_tx_ns"].to_numpy(object)[order]
    late[-1] = np.zeros(0, np.int64)
    out["late_tx_ns"] = late[np.where(yesterday, prev, len(order))]
    return out


def complete_snapshot(rows: pd.DataFrame) -> pd.DataFrame:
    """Fill the gaps of snapshot rows read from a store: an unknown customer has empty windows.

    Args:
        rows: Snapshot columns (``tx_count_{w}d``, ``amount_sum_{w}d``, ``last_tx_ns``,
            ``late_tx_ns``) with nulls where the store had no row.
    """
    return pd.DataFrame(complete_snapshot_columns(rows))


def complete_snapshot_columns(rows: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`complete_snapshot` as a dict of arrays (``rows``: any mapping of columns)."""
    out: dict[str, Any] = {}
    for w in WINDOW_DAYS:
        counts = np.asarray(_values(rows[f"tx_count_{w}d"]), dtype=float)  # None -> NaN
        out[f"tx_count_{w}d"] = np.nan_to_num(counts, nan=0.0).astype(np.int64)
        sums = np.asarray(_values(rows[f"amount_sum_{w}d"]), dtype=float)
        out[f"amount_sum_{w}d"] = np.nan_to_num(sums, nan=0.0)
    # Nanosecond times do not fit a float64 exactly: convert value by value.
    out["last_tx_ns"] = np.array(
        [_NONE if v is None or pd.isna(v) else int(v) for v in rows["last_tx_ns"]], np.int64
    )
    empty = np.zeros(0, np.int64)
    out["late_tx_ns"] = [
        empty if v is None or not len(v) else np.asarray(v, np.int64) for v in rows["late_tx_ns"]
    ]
    return out


def _values(column: Any) -> Any:
    return column.to_numpy() if isinstance(column, pd.Series) else column


def customer_window_features(
    customer_id: np.ndarray,
    event_ns: np.ndarray,
    snapshot: pd.DataFrame,
    today: pd.DataFrame,
) -> pd.DataFrame:
    """Every customer window feature at each request: snapshot plus today's running part.

    Args:
        customer_id: Customer of each request.
        event_ns: Request times (int64 ns, UTC).
        snapshot: :func:`customer_snapshot` rows aligned with the requests (the snapshot
            of the request's day).
        today: The customers' transactions (``customer_id``, ``event_timestamp``,
            ``amount``); only those on the request's UTC day and strictly before it count.

    Returns:
        The customer features of docs/design.md ("Feature semantics"), aligned with the
        requests.
    """
    return pd.DataFrame(
        customer_window_columns(
            customer_id,
            event_ns,
            snapshot,
            (
                today["customer_id"].to_numpy(np.int64),
                to_ns(today["event_timestamp"]),
                today["amount"].to_numpy(float),
            ),
        )
    )


def customer_window_columns(
    customer_id: np.ndarray,
    event_ns: np.ndarray,
    snapshot: Mapping[str, Any],
    today: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """:func:`customer_window_features` on arrays: today's transactions as three arrays
    (customer, int64 ns, amount), the snapshot as any mapping of columns, a dict out."""
    customer_id, event_ns = np.asarray(customer_id, np.int64), np.asarray(event_ns, np.int64)
    n = len(customer_id)
    t_cust, t_ns, t_amount = (
        np.asarray(a, d) for a, d in zip(today, (np.int64, np.int64, float), strict=True)
    )
    day = day_of(event_ns)
    keys = _Keys(customer_id, t_cust, days=[day, day_of(t_ns)])
    # One sorted stream of events per (customer, day): transactions, requests, and markers
    # at the start of each request's 1 h window. At equal times markers and requests sort
    # before transactions, so a transaction at exactly t never counts for t.
    marker_ns = np.maximum(event_ns - NS_HOUR, day * NS_DAY)
    ev_key = np.concatenate(
        [keys(t_cust, day_of(t_ns)), keys(customer_id, day), keys(customer_id, day)]
    )
    ev_ns = np.concatenate([t_ns, event_ns, marker_ns])
    ev_kind = np.concatenate([np.ones(len(t_ns), np.int8), np.zeros(2 * n, np.int8)])
    order = np.lexsort((ev_kind, ev_ns, ev_key))
    is_tx = ev_kind[order] == 1
    n_before = np.cumsum(is_tx) - is_tx  # transactions strictly before each event, globally
    sorted_key, sorted_ns = ev_key[order], ev_ns[order]
    # Running sums over the transactions alone (restarting at each customer and day), as
    # the training rows sum them: the same additions, the same bits.
    tx_order = order[is_tx]
    running = _cumsum_within(t_amount[tx_order], ev_key[tx_order])
    group_start = np.searchsorted(sorted_key, sorted_key, side="left")
    position = np.empty(len(order), np.int64)
    position[order] = np.arange(len(order))
    at_request, at_marker = position[len(t_ns) : len(t_ns) + n], position[len(t_ns) + n :]
    start = group_start[at_request]
    today_count = n_before[at_request] - n_before[start]
    today_sum = np.where(today_count > 0, running[np.maximum(n_before[at_request] - 1, 0)], 0.0)
    hour_count = n_before[at_request] - n_before[at_marker]  # today's part of the last hour
    last_tx_pos = np.maximum.accumulate(np.where(is_tx, np.arange(len(order)), -1))[at_request]
    seen_today = (last_tx_pos >= start) & (last_tx_pos >= 0)
    today_last = np.where(seen_today, sorted_ns[np.maximum(last_tx_pos, 0)], _NONE)

    last = np.maximum(today_last, np.asarray(_values(snapshot["last_tx_ns"]), np.int64))
    hour_count += _late_in_window(snapshot["late_tx_ns"], event_ns)
    return _customer_values(
        snapshot,
        today_count=today_count,
        today_sum=today_sum,
        hour_count=hour_count,
        last_ns=last,
        event_ns=event_ns,
    )


def _customer_values(
    snapshot: Mapping[str, Any],
    *,
    today_count: np.ndarray,
    today_sum: np.ndarray,
    hour_count: np.ndarray,
    last_ns: np.ndarray,
    event_ns: np.ndarray,
) -> dict[str, np.ndarray]:
    """The customer features from the snapshot's windows and today's part: what the
    request path and the training rows both compute last, with the same operations."""
    out: dict[str, Any] = {}
    for w in WINDOW_DAYS:
        count = np.asarray(_values(snapshot[f"tx_count_{w}d"]), np.int64) + today_count
        total = np.asarray(_values(snapshot[f"amount_sum_{w}d"]), float) + today_sum
        out[f"customer_tx_count_{w}d"] = count
        out[f"customer_amount_avg_{w}d"] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        out[f"customer_amount_sum_{w}d"] = total
    out["customer_tx_count_1h"] = hour_count
    out["seconds_since_last_customer_tx"] = np.where(
        last_ns == _NONE, np.nan, (event_ns - last_ns) / 1e9
    )
    return out


def history_customer_columns(
    history: History, daily: pd.DataFrame, from_day: int | None = None
) -> dict[str, np.ndarray]:
    """:func:`customer_window_columns` of every transaction of a complete ``history`` as
    of its own time (from ``from_day`` on), in input order: the training rows' path.

    The same split, read off the sorted history instead of a merged stream of requests:
    the snapshot of the transaction's day (:func:`customer_snapshot_columns`, once per
    customer day) plus today's part, the rows of its (customer, day) before its instant
    (the same running sums). The last hour and the latest earlier transaction are the
    customer's rows just before it (which is what yesterday's late hour and the
    snapshot's ``last_tx_ns`` add up to on the request path). A test holds both paths
    equal bit for bit.

    Args:
        history: :func:`sorted_history` of the transactions.
        daily: :func:`customer_daily` of the same history (its rows in the same order).
        from_day: Rows only for the transactions of this day and later.
    """
    h, n = history, len(history.ns)
    if len(daily) != len(h.day_starts):
        raise ValueError("daily is not customer_daily of this history")
    sorted_at = np.empty(n, np.int64)
    sorted_at[h.order] = np.arange(n)  # the sorted row of each input row
    if from_day is not None:
        sorted_at = sorted_at[h.day[sorted_at] >= from_day]
    group = np.repeat(np.arange(len(h.day_starts)), np.diff(np.r_[h.day_starts, n]))
    day_of_row = group[sorted_at]  # its row of daily
    # Rows at the same instant never see each other: each row looks from its first peer.
    at = _run_first(h.customer_id, h.ns)[sorted_at]
    day_first = h.day_starts[day_of_row]
    running = _cumsum_within(h.amount, group)  # restarts at each (customer, day)
    today_sum = np.where(at > day_first, running[np.maximum(at - 1, 0)], 0.0)
    customer_first = _run_first(h.customer_id)[sorted_at]
    event_ns = h.ns[sorted_at]
    hour_first = _first_at_or_after(h.ns, customer_first, at, event_ns - NS_HOUR)
    last = np.where(at > customer_first, h.ns[np.maximum(at - 1, 0)], _NONE)
    days = customer_snapshot_columns(daily, daily["customer_id"], daily["day"], lists=False)
    snapshot = {name: values[day_of_row] for name, values in days.items()}
    return _customer_values(
        snapshot,
        today_count=at - day_first,
        today_sum=today_sum,
        hour_count=at - hour_first,
        last_ns=last,
        event_ns=event_ns,
    )


def flatten_lists(lists: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lists of int64 (arrays, lists, or None) as their lengths and their values end
    to end: what a list column is made of (C loops: ``len`` mapped, one concatenate)."""
    lengths = np.fromiter(map(_length, lists), np.int64, n)
    filled = [np.asarray(v, np.int64) for v, k in zip(lists, lengths, strict=True) if k]
    return lengths, np.concatenate(filled) if filled else np.zeros(0, np.int64)


def _length(values: Any) -> int:
    return 0 if values is None else len(values)


def _late_in_window(late: Any, event_ns: np.ndarray) -> np.ndarray:
    """Yesterday's last-hour transactions inside each request's [t - 1 h, t)."""
    lengths, values = flatten_lists(late, len(event_ns))
    if not len(values):
        return np.zeros(len(event_ns), np.int64)
    owner = np.repeat(np.arange(len(event_ns)), lengths)
    inside = (values >= event_ns[owner] - NS_HOUR) & (values < event_ns[owner])
    return np.bincount(owner[inside], minlength=len(event_ns))


# -- merchants ----------------------------------------------------------------------------


def merchant_daily(tx: pd.DataFrame, label_delay_days: int) -> pd.DataFrame:
    """Per merchant and UTC day: transactions, and frauds reported in time for the windows.

    A fraud of day ``k`` first enters a merchant window in the snapshot of day
    ``k + label_delay_days + 1``; it counts when its label is available by then, so a
    snapshot never uses a label that was not yet known.
    """
    ns = to_ns(tx["event_timestamp"])
    day = day_of(ns)
    reported_by = (day + label_delay_days + 1) * NS_DAY
    fraud = np.asarray(tx["is_fraud"], bool) & (to_ns(tx["label_available_at"]) <= reported_by)
    merchant = np.asarray(tx["merchant_id"], np.int64)
    return sum_merchant_days(merchant, day, np.ones(len(day), np.int64), fraud)


def sum_merchant_days(
    merchant_id: np.ndarray, day: np.ndarray, tx_count: np.ndarray, fraud_count: np.ndarray
) -> pd.DataFrame:
    """``tx_count`` and ``fraud_count`` summed per (merchant, day), sorted by merchant then
    day: the rows of :func:`merchant_daily`, or its partial rows from several customer
    partitions added up. Hash codes and counting sorts: no pandas group-by."""
    merchant_id, day = np.asarray(merchant_id, np.int64), np.asarray(day, np.int64)
    columns = ("merchant_id", "day", "tx_count", "fraud_count")
    if not len(day):
        return pd.DataFrame({c: np.zeros(0, np.int64) for c in columns})
    codes, merchants = pd.factorize(merchant_id, sort=True)
    first, span = int(day.min()), int(day.max() - day.min()) + 1
    key = codes.astype(np.int64) * span + (day - first)  # sorted keys: merchant, then day
    size = len(merchants) * span
    if size <= 4 * len(key) + 4096:  # dense enough to count per slot, then keep the used
        slots = np.flatnonzero(np.bincount(key, minlength=size))
        group, bins = key, size
    else:
        slots, group = np.unique(key, return_inverse=True)
        bins = len(slots)
    sums = [np.bincount(group, np.asarray(v, float), bins) for v in (tx_count, fraud_count)]
    if bins != len(slots):
        sums = [values[slots] for values in sums]
    return pd.DataFrame(
        {
            "merchant_id": merchants[slots // span].astype(np.int64),
            "day": slots % span + first,
            "tx_count": sums[0].astype(np.int64),  # exact: counts stay far below 2**53
            "fraud_count": sums[1].astype(np.int64),
        }
    )


def merchant_snapshot(
    daily: pd.DataFrame, merchant_id: np.ndarray, day: np.ndarray, label_delay_days: int
) -> pd.DataFrame:
    """Merchant features as of midnight of ``day``: windows ``[day - d - w, day - d)``."""
    return pd.DataFrame(merchant_snapshot_columns(daily, merchant_id, day, label_delay_days))


def merchant_snapshot_columns(
    daily: pd.DataFrame, merchant_id: np.ndarray, day: np.ndarray, label_delay_days: int
) -> dict[str, np.ndarray]:
    """:func:`merchant_snapshot` as a dict of arrays."""
    merchant_id, day = np.asarray(merchant_id, np.int64), np.asarray(day, np.int64)
    keys, dkey, order = _sorted_days(daily, "merchant_id", merchant_id, day)
    counts = np.r_[0, np.cumsum(daily["tx_count"].to_numpy()[order])]
    frauds = np.r_[0, np.cumsum(daily["fraud_count"].to_numpy()[order])]
    end = day - label_delay_days
    keys(merchant_id, end - max(WINDOW_DAYS))  # checks the look-back stays in range
    search = _SortedSearch(dkey, keys(merchant_id, end))
    hi = search(0)
    out: dict[str, Any] = {}
    for w in WINDOW_DAYS:
        lo = search(-w)
        count, fraud = counts[hi] - counts[lo], frauds[hi] - frauds[lo]
        out[f"merchant_tx_count_{w}d"] = count
        out[f"merchant_fraud_rate_{w}d"] = np.where(count > 0, fraud / np.maximum(count, 1), 0.0)
    return out


# -- rows of the model input and of the Feast sources ---------------------------------------


def feature_rows(
    tx: pd.DataFrame,
    merchant_days: pd.DataFrame,
    label_delay_days: int,
    from_day: int | None = None,
    daily: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every feature, as of each transaction, for customers whose whole history is in ``tx``.

    Args:
        tx: Transactions of the contract; each customer's history complete (or, with
            ``from_day``, as far back as the windows reach).
        merchant_days: :func:`merchant_daily` of *all* transactions (merchants are shared
            across customer partitions).
        label_delay_days: ``d`` of the merchant windows.
        from_day: Rows only for the transactions of this day and later; the earlier ones
            only feed their windows (a night's build).
        daily: :func:`customer_daily` of ``tx``, where the caller has it already.

    Returns:
        The model-input columns of docs/design.md ("Feature semantics"), one row per
        transaction (input order).
    """
    features = feature_columns(tx, merchant_days, label_delay_days, from_day, daily=daily)
    if from_day is not None:
        tx = tx[day_of(to_ns(tx["event_timestamp"])) >= from_day]
    keys = tx[[*KEY_COLUMNS, *LABEL_COLUMNS]].reset_index(drop=True)
    return pd.concat([keys, pd.DataFrame(features)], axis=1)


def feature_columns(
    tx: Mapping[str, Any],
    merchant_days: pd.DataFrame,
    label_delay_days: int,
    from_day: int | None = None,
    *,
    daily: pd.DataFrame | None = None,
    history: History | None = None,
) -> dict[str, np.ndarray]:
    """The feature columns of :func:`feature_rows` (no key or label column) as arrays;
    ``tx`` is a DataFrame or any mapping of its columns (numpy arrays from Arrow: no
    pandas on the batch path). ``history`` and ``daily``: :func:`sorted_history` and
    :func:`customer_daily` of ``tx``, where the caller has them already."""
    history = sorted_history(tx) if history is None else history
    daily = customer_daily(tx, history) if daily is None else daily
    merchant = np.asarray(tx["merchant_id"], np.int64)
    ns, amount = to_ns(tx["event_timestamp"]), np.asarray(tx["amount"], float)
    if from_day is not None:
        keep = day_of(ns) >= from_day
        merchant, ns, amount = merchant[keep], ns[keep], amount[keep]
    customer = history_customer_columns(history, daily, from_day)
    merchants = merchant_snapshot_columns(merchant_days, merchant, day_of(ns), label_delay_days)
    request = request_feature_columns(amount, ns, customer["customer_amount_avg_30d"])
    return customer | merchants | request


# Days after a customer's active day on which its snapshot changes: the day enters the
# windows, leaves the late hour, and leaves each window.
CUSTOMER_SNAPSHOT_OFFSETS = sorted({1, 2, *(w + 1 for w in WINDOW_DAYS)})


def customer_snapshot_rows(
    daily: pd.DataFrame, until_day: int | None = None, from_day: int | None = None
) -> pd.DataFrame:
    """Snapshot rows for the Feast source: one per customer and day on which a value changes.

    Between two rows the values stay the same, so Feast's point-in-time join (latest row
    at or before ``t``) returns exactly the snapshot of ``t``'s day. ``until_day`` and
    ``from_day`` bound the rows' days (a night's build needs only the newest).
    """
    return _snapshot_rows(
        daily, "customer_id", CUSTOMER_SNAPSHOT_OFFSETS, (from_day, until_day), customer_snapshot
    )


def merchant_snapshot_rows(
    daily: pd.DataFrame,
    label_delay_days: int,
    until_day: int | None = None,
    from_day: int | None = None,
) -> pd.DataFrame:
    """Merchant snapshot rows for the Feast source, at the days their values change."""
    d = label_delay_days
    offsets = sorted({d + 1, *(d + w + 1 for w in WINDOW_DAYS)})

    def snapshot(days: pd.DataFrame, ids: np.ndarray, at: np.ndarray) -> pd.DataFrame:
        return merchant_snapshot(days, ids, at, d)

    return _snapshot_rows(daily, "merchant_id", offsets, (from_day, until_day), snapshot)


def _snapshot_rows(
    daily: pd.DataFrame,
    entity: str,
    offsets: list[int],
    bounds: tuple[int | None, int | None],
    snapshot: Any,
) -> pd.DataFrame:
    entities, active = daily[entity].to_numpy(np.int64), daily["day"].to_numpy(np.int64)
    # Also a row at each entity's first day (empty windows): every transaction then has a
    # row at or before it, which Feast's file offline store needs (its as-of join is inner).
    first = daily.groupby(entity, sort=False)["day"].min()
    ids, days = [first.index.to_numpy(np.int64)], [first.to_numpy(np.int64)]
    for offset in offsets:
        ids.append(entities)
        days.append(active + offset)
    from_day, until_day = bounds
    low = np.iinfo(np.int64).min if from_day is None else from_day
    high = np.iinfo(np.int64).max if until_day is None else until_day
    # Within bounds only, before deduplicating: a night keeps a few days' pairs of millions.
    kept = [(i[(d >= low) & (d <= high)], d[(d >= low) & (d <= high)]) for i, d in zip(ids, days)]
    pairs = pd.DataFrame(
        {entity: np.concatenate([i for i, _ in kept]), "day": np.concatenate([d for _, d in kept])}
    ).drop_duplicates()
    pairs = pairs.sort_values([entity, "day"], ignore_index=True)
    values = snapshot(daily, pairs[entity].to_numpy(), pairs["day"].to_numpy())
    stamp = pd.DatetimeIndex((pairs["day"].to_numpy() * NS_DAY).view("datetime64[ns]")).tz_localize(
        "UTC"
    )
    return pd.concat([pairs[[entity]], pd.DataFrame({"snapshot_ts": stamp}), values], axis=1)


# -- request time -------------------------------------------------------------------------


def seconds_of_day(event_ns: np.ndarray) -> np.ndarray:
    """Seconds since midnight UTC of each nanosecond timestamp."""
    return (np.asarray(event_ns, np.int64) % NS_DAY) // 1_000_000_000


def is_weekend(event_ns: np.ndarray) -> np.ndarray:
    """Whether each nanosecond timestamp falls on a Saturday or Sunday (UTC)."""
    weekday = (day_of(np.asarray(event_ns, np.int64)) + 3) % 7  # 1970-01-01 was a Thursday
    return weekday >= 5


def request_features(
    amount: np.ndarray, event_ns: np.ndarray, amount_avg_30d: np.ndarray
) -> pd.DataFrame:
    """Features known from the request alone (and the customer's 30-day average)."""
    return pd.DataFrame(request_feature_columns(amount, event_ns, amount_avg_30d))


def request_feature_columns(
    amount: np.ndarray, event_ns: np.ndarray, amount_avg_30d: np.ndarray
) -> dict[str, np.ndarray]:
    """:func:`request_features` as a dict of arrays."""
    hour = (seconds_of_day(event_ns) // 3600).astype(np.int64)
    avg = np.asarray(amount_avg_30d, float)
    return {
        "amount_to_customer_avg_30d": np.asarray(amount, float) / avg,
        "hour_of_day": hour,
        "is_weekend": is_weekend(event_ns),
        "is_night": (hour >= NIGHT_HOURS.start) & (hour < NIGHT_HOURS.stop),
    }


def _sorted_days(
    daily: pd.DataFrame, entity: str, ids: np.ndarray, days: np.ndarray
) -> tuple[_Keys, np.ndarray, np.ndarray]:
    """Keys shared by the daily rows and the queries; the rows' keys sorted, and that order."""
    keys = _Keys(daily[entity].to_numpy(), ids, days=[daily["day"].to_numpy(), days])
    dkey = keys(daily[entity].to_numpy(), daily["day"].to_numpy())
    order = np.argsort(dkey, kind="stable")
    return keys, dkey[order], order


class _SortedSearch:
    """``searchsorted(haystack, needles + shift)`` for several shifts, needles sorted once.

    Searching sorted needles is several times faster than random ones (cache locality);
    a shift keeps their order, so one argsort serves every window.
    """

    def __init__(self, haystack: np.ndarray, needles: np.ndarray) -> None:
        self._haystack = haystack
        self._order = np.argsort(needles, kind="stable")
        self._sorted = needles[self._order]

    def __call__(self, shift: int) -> np.ndarray:
        found = np.empty(len(self._order), np.int64)
        found[self._order] = np.searchsorted(self._haystack, self._sorted + shift, side="left")
        return found


# -- helpers ------------------------------------------------------------------------------


def _group_starts(*sorted_keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys[0]):
        return np.zeros(0, np.int64)
    change = np.zeros(len(sorted_keys[0]), bool)
    change[0] = True
    for key in sorted_keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def _cumsum_within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` (Kahan-compensated) that restart at each group (rows
    sorted by group)."""
    if len(values) > _SMALL:
        return pd.Series(values).groupby(groups, sort=False).cumsum().to_numpy()
    inclusive = np.empty(len(values))  # pandas' group cumsum, step for step
    starts = set(_group_starts(groups).tolist())
    total = compensation = 0.0
    for i, value in enumerate(values.tolist()):
        if i in starts:
            total = compensation = 0.0
        y = value - compensation
        t = total + y
        compensation = t - total - y
        total = inclusive[i] = t
    return inclusive


def _run_first(*sorted_keys: np.ndarray) -> np.ndarray:
    """For each row, the first row of its run of equal keys (rows sorted by the keys)."""
    starts = _group_starts(*sorted_keys)
    first = np.zeros(len(sorted_keys[0]), np.int64)
    first[starts] = starts
    return np.maximum.accumulate(first)


def _first_at_or_after(
    values: np.ndarray, first: np.ndarray, end: np.ndarray, bound: np.ndarray
) -> np.ndarray:
    """Per query: the first row ``j`` in ``first..end`` with ``values[j] >= bound``, or
    ``end``, where ``values`` is sorted within each ``first..end`` (``values[end]``
    itself is not read).

    Gallops back from ``end`` (1, 2, 4, ... rows), then bisects the last step: the cost
    is the log of the rows between the answer and ``end`` (a handful in the last hour),
    not of the history.
    """
    lo, hi = first - 1, end.copy()  # values[lo] < bound (or before first) <= values[hi]
    step, active = 1, np.arange(len(end))
    while len(active):
        probe = hi[active] - step
        below = probe < first[active]
        below |= values[np.maximum(probe, 0)] < bound[active]
        lo[active] = np.where(below, np.maximum(probe, first[active] - 1), lo[active])
        hi[active] = np.where(below, hi[active], probe)
        active, step = active[~below], 2 * step
    active = np.flatnonzero(hi - lo > 1)
    while len(active):
        mid = (lo[active] + hi[active]) // 2
        below = values[mid] < bound[active]
        lo[active] = np.where(below, mid, lo[active])
        hi[active] = np.where(below, hi[active], mid)
        active = active[hi[active] - lo[active] > 1]
    return hi


def _lists(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Split ``values`` (ordered by ``group``) into one array per group, empty ones included
    (an object array; the empty groups, most of them, share one empty array)."""
    out = np.empty(n_groups, object)
    out.fill(np.zeros(0, values.dtype))
    bounds = np.searchsorted(group, np.arange(n_groups + 1))
    for g in np.unique(group).tolist():  # only the groups with values: a Python loop is cheap
        out[g] = values[bounds[g] : bounds[g + 1]]
    return out


def latest_rows(rows: pd.DataFrame, join_key: str) -> pd.DataFrame:
    """The latest snapshot row of every entity (what the online store serves)."""
    ordered = rows.sort_values([join_key, "snapshot_ts"], kind="stable")
    return ordered.drop_duplicates(join_key, keep="last").reset_index(drop=True)
