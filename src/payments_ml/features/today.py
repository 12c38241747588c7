"""Today's running part of the customer windows: what the scorer keeps per customer.

A customer's ``customer_today`` row holds the event times, amounts and hashed ids of
their transactions of the latest ``KEEP_DAYS`` UTC days that have any (yesterday, today
and, around midnight, tomorrow), so the arrival order of a day's transactions never
matters: a transaction dated just after midnight that arrives before the last ones of
the previous day does not wipe them, a transaction dated far ahead (the scorer refuses
those beyond a clock skew, but a replay of past days cannot) takes one day's place and
not the current day's, and each transaction is counted once (by its hashed id) for
every later answer of its own day. The window code (`windows.customer_window_columns`)
counts only the transactions of a request's own day, strictly before it.

These functions are pure: the online-store backends call `merge_today` inside their
atomic read-modify-write, and the scorer calls `today_columns` on what they read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

KEEP_DAYS = 3  # distinct days with transactions kept in a customer's row
# A customer's row: column -> (value kind, meaning). The Feast view customer_today is
# built from it (feature_store/views.py).
SCHEMA: dict[str, tuple[str, str]] = {
    "day": ("int64", "the latest day with transactions, days since 1970-01-01 (UTC)"),
    "tx_ns": ("int64[]", "event times, ns UTC"),
    "amounts": ("float64[]", "amounts, in the order of tx_ns"),
    "tx_keys": ("int64[]", "hashed transaction ids (transaction_key)"),
}
COLUMNS = tuple(SCHEMA)


class Entry(NamedTuple):
    """One transaction to add to its customer's row."""

    row: int  # its position in the scored batch
    ns: int  # event time, int64 ns UTC
    amount: float
    key: int  # transaction_key(transaction_id)


def transaction_key(transaction_id: str) -> int:
    """A stable signed 64-bit hash of a transaction id."""
    digest = hashlib.blake2b(transaction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def merge_today(
    state: dict[str, Any] | None, entries: Sequence[Entry]
) -> tuple[dict[str, Any] | None, list[int]]:
    """A customer's row after adding ``entries``, and the batch rows that were new.

    Args:
        state: The stored row (``day``, ``tx_ns``, ``amounts``, ``tx_keys``), or None.
        entries: The customer's scored transactions, in any order.

    Returns:
        The new row (``day`` is its latest day; ``event_ns`` its latest event time), or
        None when nothing changed; and the ``row`` of each entry that was not in the
        row yet (a retried transaction is not new). Only the latest ``KEEP_DAYS`` days
        with transactions are kept: a transaction older than all of them is not stored
        (no answer of a day still being served needs it).
    """
    if state is None or state.get("day") is None:
        state = {"tx_ns": [], "amounts": [], "tx_keys": []}
    stored = list(zip(state["tx_ns"], state["amounts"], state["tx_keys"], strict=True))
    seen = {key for _, _, key in stored}
    fresh: list[Entry] = []
    for entry in entries:
        if entry.key not in seen:
            seen.add(entry.key)
            fresh.append(entry)
    days = {int(ns) // _NS_DAY for ns, _, _ in stored} | {int(e.ns) // _NS_DAY for e in fresh}
    kept_days = set(sorted(days)[-KEEP_DAYS:])
    kept = [t for t in stored if t[0] // _NS_DAY in kept_days]
    added = [e for e in fresh if e.ns // _NS_DAY in kept_days]
    if not added and len(kept) == len(stored):
        return None, []
    kept += [(int(e.ns), float(e.amount), int(e.key)) for e in added]
    row = {
        "day": max(kept_days),
        "tx_ns": [t[0] for t in kept],
        "amounts": [t[1] for t in kept],
        "tx_keys": [t[2] for t in kept],
    }
    row["event_ns"] = max(row["tx_ns"])
    return row, [e.row for e in added]


def transaction_keys(transaction_id: Sequence[str]) -> np.ndarray:
    """`transaction_key` of each id, as int64."""
    return np.fromiter((transaction_key(t) for t in transaction_id), np.int64, len(transaction_id))


def entries_by_customer(
    customer_id: np.ndarray, event_ns: np.ndarray, amount: np.ndarray, tx_key: np.ndarray
) -> dict[int, list[Entry]]:
    """A scored batch's transactions grouped by customer (what `merge_today` takes)."""
    grouped: dict[int, list[Entry]] = {}
    for row, (customer, ns, value, key) in enumerate(
        zip(
            np.asarray(customer_id, np.int64).tolist(),
            np.asarray(event_ns, np.int64).tolist(),
            np.asarray(amount, float).tolist(),
            np.asarray(tx_key, np.int64).tolist(),
            strict=True,
        )
    ):
        grouped.setdefault(customer, []).append(Entry(row, ns, value, key))
    return grouped


def today_columns(
    stored: dict[int, dict[str, Any] | None],
    customer_id: np.ndarray,
    event_ns: np.ndarray,
    amount: np.ndarray,
    tx_key: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transactions the windows of a batch may count: stored rows plus the batch.

    Each transaction appears once: a batch transaction already stored (a retry), or
    repeated within the batch, is taken once. Which of them fall on a request's day and
    before it is the window code's business.

    Args:
        stored: Each customer's stored row (None: no row).
        customer_id, event_ns, amount: The batch's columns.
        tx_key: `transaction_key` of each batch transaction.

    Returns:
        ``(customer_id, event_ns, amount)`` arrays.
    """
    customers, stamps, values = [], [], []
    seen: set[tuple[int, int]] = set()
    for customer, row in stored.items():
        if row and row.get("tx_ns"):
            n = len(row["tx_ns"])
            customers.append(np.full(n, customer, np.int64))
            stamps.append(np.asarray(row["tx_ns"], np.int64))
            values.append(np.asarray(row["amounts"], float))
            seen.update((customer, key) for key in row["tx_keys"])
    keep = []
    for i, marker in enumerate(
        zip(
            np.asarray(customer_id, np.int64).tolist(),
            np.asarray(tx_key, np.int64).tolist(),
            strict=True,
        )
    ):
        if marker not in seen:
            seen.add(marker)
            keep.append(i)
    customers.append(np.asarray(customer_id, np.int64)[keep])
    stamps.append(np.asarray(event_ns, np.int64)[keep])
    values.append(np.asarray(amount, float)[keep])
    return np.concatenate(customers), np.concatenate(stamps), np.concatenate(values)


_NS_DAY = 86_400_000_000_000
