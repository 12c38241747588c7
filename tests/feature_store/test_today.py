"""customer_today: appends are idempotent, order-proof, atomic, and log exactly once."""

from __future__ import annotations

import random
import threading

import numpy as np
import pandas as pd
import pytest

from payments_ml.feature_store import store as fs
from payments_ml.feature_store.backends import open_backend
from payments_ml.features import today
from payments_ml.features.definitions import CUSTOMER_SNAPSHOT_FEATURES
from payments_ml.features.windows import NS_DAY, complete_snapshot_columns, customer_window_columns

NOON = pd.Timestamp("2025-05-10 12:00", tz="UTC")


def _entries(ids: list[str], customer: int, start: pd.Timestamp = NOON, step_s: float = 1):
    ns = np.array([(start + pd.Timedelta(seconds=i * step_s)).value for i in range(len(ids))])
    return today.entries_by_customer(
        np.full(len(ids), customer),
        ns,
        np.arange(1, len(ids) + 1, dtype=float),
        today.transaction_keys(ids),
    )


def _row(backend, customer: int) -> dict | None:
    return backend.read(np.array([customer]), np.array([0])).today[customer]


def test_merge_keeps_two_days_whatever_the_arrival_order():
    """A transaction just after midnight arriving before the day's last ones wipes
    nothing; every transaction is counted once for every later answer of its day."""
    day = NOON.value // NS_DAY
    late_evening = [NOON + pd.Timedelta(hours=11, minutes=m) for m in range(50, 60)]
    after_midnight = [NOON + pd.Timedelta(hours=12, minutes=m) for m in range(0, 5)]
    stamps = late_evening + after_midnight
    for seed in range(20):
        order = list(range(len(stamps)))
        random.Random(seed).shuffle(order)
        row = None
        for i in order:
            entry = today.Entry(i, stamps[i].value, 1.0, today.transaction_key(f"t{i}"))
            new, added = today.merge_today(row, [entry])
            assert added == [i]
            row = new or row
        assert row["day"] == day + 1 and sorted(row["tx_ns"]) == sorted(s.value for s in stamps)
        # A probe at the end of each day counts exactly that day's transactions.
        for probe_day, expected in ((day, 10), (day + 1, 5)):
            probe = (probe_day + 1) * NS_DAY - 1
            n = len(row["tx_ns"])
            columns = customer_window_columns(
                np.array([7]),
                np.array([probe]),
                complete_snapshot_columns({n: [None] for n in CUSTOMER_SNAPSHOT_FEATURES}),
                (np.full(n, 7), np.array(row["tx_ns"]), np.array(row["amounts"])),
            )
            assert columns["customer_tx_count_1d"][0] == expected


def test_merge_keeps_the_latest_days_and_skips_retries():
    old = today.Entry(0, NOON.value, 1.0, 11)
    row, added = today.merge_today(None, [old])
    assert added == [0]
    again, added = today.merge_today(row, [old])  # a retry changes nothing
    assert again is None and added == []
    for i in range(1, today.KEEP_DAYS + 1):  # one transaction on each of the next days
        row, added = today.merge_today(row, [today.Entry(i, NOON.value + i * NS_DAY, 2.0, 11 + i)])
        assert added == [i]
    assert row["tx_keys"] == list(range(12, 12 + today.KEEP_DAYS))  # the first day is gone
    stale, added = today.merge_today(row, [today.Entry(9, NOON.value, 3.0, 99)])
    assert stale is None and added == []  # older than every kept day: not stored


def test_a_far_future_transaction_does_not_blind_the_day():
    """Accepted far ahead (a replay of past days is not bounded by the server clock): the
    day's own transactions still count, in any order."""
    ahead = today.Entry(0, NOON.value + 400 * NS_DAY, 1.0, 1)
    row, _ = today.merge_today(None, [ahead])
    for i in range(4):
        row, added = today.merge_today(row, [today.Entry(i + 1, NOON.value + i, 1.0, 10 + i)])
        assert added == [i + 1]
    on_the_day = [ns for ns in row["tx_ns"] if ns // NS_DAY == NOON.value // NS_DAY]
    assert len(on_the_day) == 4


def assert_appends_are_exact(store, other) -> None:
    """Idempotent by id, order-proof over midnight, no lost update under concurrent writers,
    and one outbox record per new transaction.

    ``other`` is a second store object (its own connection, as another replica has).
    Customer ids are fresh on every call, so a store used before does not interfere.
    """
    first, second = np.random.default_rng().integers(10**9, 2 * 10**9, 2).tolist()
    backend, other_backend = open_backend(store, 5.0), open_backend(other, 5.0)
    outbox = backend.outbox()
    waiting = outbox.pending()

    def log(rows: list[int]) -> bytes:
        return repr(rows).encode()

    assert backend.append_today(_entries(["a", "b"], first), log) == [0, 1]
    assert backend.append_today(_entries(["b", "c"], first), log) == [1]  # "b": a retry
    row = _row(backend, first)
    assert row["day"] == NOON.value // NS_DAY
    assert len(row["tx_ns"]) == 3 and row["amounts"] == [1.0, 2.0, 2.0]

    tomorrow = _entries(["d"], first, start=NOON + pd.Timedelta(days=1))
    assert backend.append_today(tomorrow, log) == [0]
    late = _entries(["e"], first, start=NOON + pd.Timedelta(hours=11))  # yesterday, late
    assert backend.append_today(late, log) == [0]
    row = _row(backend, first)
    assert row["day"] == NOON.value // NS_DAY + 1 and len(row["tx_ns"]) == 5
    assert outbox.pending() == waiting + 4  # one record per append that added something

    def writer(prefix: str, target) -> None:
        for i in range(25):
            target.append_today(_entries([f"{prefix}{i}"], second), None)

    threads = [
        threading.Thread(target=writer, args=(p, b))
        for p, b in (("x", backend), ("y", other_backend), ("z", backend))  # z: a 2nd thread
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(_row(backend, second)["tx_keys"]) == 75

    # The outbox: one claim at a time; a lapsed claim is redone with the same name.
    claim = outbox.claim("one", 1000, lease_s=30)
    assert claim is not None and len(claim.records) == outbox.pending()
    assert outbox.claim("two", 1000, lease_s=30) is None  # held by "one"
    taken = outbox.claim("one", 1000, lease_s=-1)  # "one" again: the same records; lapses
    assert taken.name == claim.name
    redone = other_backend.outbox().claim("two", 1000, lease_s=30)  # the lease ran out
    assert redone.name == claim.name and redone.records == claim.records
    other_backend.outbox().complete(redone)
    outbox.complete(claim)  # the first owner finishing late deletes nothing more
    assert outbox.pending() == 0

    # A replay starts with an empty customer_today; the snapshots stay as they were.
    merchants = np.array([first, second], np.int64)
    view = store.get_feature_view("merchant_snapshot")
    fs.write_online(
        store,
        view,
        pd.DataFrame(
            {
                "merchant_id": merchants,
                "snapshot_ts": NOON.normalize(),
                **{f.name: [3, 4] if "count" in f.name else [0.25, 0.5] for f in view.features},
            }
        ),
    )
    before = fs.read_online(store, "merchant_snapshot", "merchant_id", merchants)
    assert before["merchant_tx_count_30d"].tolist() == [3, 4]
    fs.clear_view(store, "customer_today")
    assert _row(backend, first) is None and _row(backend, second) is None
    pd.testing.assert_frame_equal(
        fs.read_online(store, "merchant_snapshot", "merchant_id", merchants), before
    )
    assert other_backend.append_today(_entries(["e"], first), None) == [0]  # appends again
    assert len(_row(backend, first)["tx_ns"]) == 1


@pytest.mark.parametrize("online_type", ["packed_sqlite", "sqlite"])
def test_appends(tmp_path, snapshots, online_type):
    """The packed store's atomic update, and Feast's own SQLite store through the generic
    read-then-write path (one writer at a time)."""
    from tests.feature_store.conftest import make_repo  # noqa: PLC0415

    repo = make_repo(tmp_path, snapshots, online_type)
    assert_appends_are_exact(repo["store"], fs.open_store(repo["config"]))
