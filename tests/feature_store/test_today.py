"""customer_today: appends are idempotent, start afresh each day, and never lose updates."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

today = pytest.importorskip("payments_ml.feature_store.today")
fs = pytest.importorskip("payments_ml.feature_store.store")

NOON = pd.Timestamp("2025-05-10 12:00", tz="UTC")


def _rows(ids: list[str], customer: int = 5, start: pd.Timestamp = NOON) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": ids,
            "customer_id": customer,
            "event_timestamp": [start + pd.Timedelta(seconds=i) for i in range(len(ids))],
            "amount": np.arange(1, len(ids) + 1, dtype=float),
        }
    )


def _state(store, customer: int = 5) -> dict:
    names = [f"customer_today:{c}" for c in today.COLUMNS]
    return store.get_online_features(
        features=names, entity_rows=[{"customer_id": customer}]
    ).to_dict()


def assert_appends_are_exact(store, other) -> None:
    """Idempotent by id, reset on a new day, no lost update under concurrent writers.

    ``other`` is a second store object (its own connection, as another replica has).
    Customer ids are fresh on every call, so a store used before does not interfere.
    """
    first, second = np.random.default_rng().integers(10**9, 2 * 10**9, 2).tolist()
    today.append_today(store, _rows(["a", "b"], customer=first))
    today.append_today(store, _rows(["b", "c"], customer=first))  # "b" again: a retry
    state = _state(store, first)
    assert state["day"] == [NOON.value // 86_400_000_000_000]
    assert len(state["tx_ns"][0]) == 3 and state["amounts"][0] == [1.0, 2.0, 2.0]

    today.append_today(store, _rows(["d"], customer=first, start=NOON + pd.Timedelta(days=1)))
    assert len(_state(store, first)["tx_ns"][0]) == 1  # a new day starts afresh

    def writer(prefix: str, target) -> None:
        for i in range(25):
            today.append_today(target, _rows([f"{prefix}{i}"], customer=second))

    threads = [
        threading.Thread(target=writer, args=(p, s)) for p, s in (("x", store), ("y", other))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(_state(store, second)["tx_keys"][0]) == 50

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
    assert _state(store, first)["day"] == [None] and _state(store, second)["day"] == [None]
    pd.testing.assert_frame_equal(
        fs.read_online(store, "merchant_snapshot", "merchant_id", merchants), before
    )
    today.append_today(other, _rows(["e"], customer=first))  # and takes appends again
    assert len(_state(store, first)["tx_ns"][0]) == 1


@pytest.mark.parametrize("online_type", ["packed_sqlite", "sqlite"])
def test_appends(tmp_path, snapshots, online_type):
    """The packed store's atomic update, and Feast's own SQLite store through the generic
    read-then-write path (one writer at a time)."""
    from tests.feature_store.conftest import make_repo  # noqa: PLC0415

    repo = make_repo(tmp_path, snapshots, online_type)
    assert_appends_are_exact(repo["store"], fs.open_store(repo["config"]))
