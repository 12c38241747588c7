"""The scorer without HTTP: train/serve consistency, streaming state, cold start, outage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from payments_ml.features.definitions import FEATURES
from payments_ml.serving.scorer import Scorer, StoreUnavailable


def _features(results: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r["features_used"] for r in results])[FEATURES].astype(float)


@pytest.mark.parametrize("batch", [1, 64])
def test_replaying_a_day_uses_exactly_the_training_features(replay_day, small_model, batch):
    """Day D's snapshot online, D's transactions streamed in time order: training values."""
    scorer = Scorer(small_model, replay_day["store"])
    today = replay_day["today"]
    results = []
    for start in range(0, len(today), batch):
        results += scorer.score(today.iloc[start : start + batch]).answers()
    served = _features(results)
    expected = replay_day["expected"][FEATURES].astype(float)
    same = np.isclose(served.to_numpy(), expected.to_numpy(), rtol=1e-9, equal_nan=True)
    assert len(today) > 300 and same.all(), served.columns[~same.all(axis=0)].tolist()
    assert [r["transaction_id"] for r in results] == today["transaction_id"].tolist()


def test_scoring_twice_does_not_count_a_transaction_twice(replay_day, small_model):
    scorer = Scorer(small_model, replay_day["store"])
    today = replay_day["today"].iloc[:100]
    first = scorer.score(today)
    again = scorer.score(today)  # retried requests: already in today's state
    pd.testing.assert_frame_equal(_features(first.answers()), _features(again.answers()))
    assert first.new.all() and not again.new.any()


def test_the_next_transaction_sees_the_one_just_scored(replay_day, small_model):
    scorer = Scorer(small_model, replay_day["store"])
    tx = replay_day["today"].iloc[[0]]
    later = tx.assign(
        transaction_id="next", event_timestamp=tx["event_timestamp"] + pd.Timedelta(minutes=5)
    )
    before = scorer.score(later.assign(transaction_id="probe")).answers()[0]["features_used"]
    scorer.score(tx)
    after = scorer.score(later).answers()[0]["features_used"]
    assert after["customer_tx_count_1h"] == before["customer_tx_count_1h"] + 1
    assert after["seconds_since_last_customer_tx"] == pytest.approx(300.0)


def test_unknown_customer_and_merchant_get_cold_start_values(replay_day, small_model):
    tx = replay_day["today"].iloc[[0]].assign(customer_id=987_654_321, merchant_id=123_456_789)
    result = Scorer(small_model, replay_day["store"]).score(tx).answers()[0]
    used = result["features_used"]
    assert used["customer_tx_count_30d"] == 0 and used["merchant_tx_count_30d"] == 0
    assert used["customer_amount_avg_30d"] is None
    assert used["seconds_since_last_customer_tx"] is None
    assert 0 <= result["fraud_probability"] <= 1
    assert result["decision"] in {"approve", "review", "decline"}
    assert result["model_version"] == "7"


def test_answers_carry_decisions_and_reasons(replay_day, small_model):
    scored = Scorer(small_model, replay_day["store"]).score(replay_day["today"].iloc[:50])
    results = scored.answers()
    for r in results:
        assert r["decision"] == small_model.decide(np.array([r["fraud_probability"]]))[0]
        assert len(r["reasons"]) <= 3
        assert all(reason["feature"] in FEATURES for reason in r["reasons"])


def test_a_missing_store_file_is_reported_never_recreated_and_picked_up_again(
    replay_day, small_model
):
    """The embedded store moved aside: StoreUnavailable naming the file; put back: scores."""
    from payments_ml.feature_store.online_store import view_path  # noqa: PLC0415

    scorer = Scorer(small_model, replay_day["store"])
    tx = replay_day["today"].iloc[:1]
    scorer.score(tx)
    path = view_path(replay_day["store"].config, "customer_snapshot")
    aside = path.with_name("aside.db")
    path.rename(aside)
    try:
        with pytest.raises(StoreUnavailable, match=f"{path.name} is missing"):
            scorer.score(tx)
        assert f"{path} is missing" in scorer.check_store()
        assert not path.exists()  # not silently recreated empty
    finally:
        aside.rename(path)
    assert scorer.check_store() is None
    assert len(scorer.score(tx).answers()) == 1


def test_a_held_write_lock_fails_within_the_timeout(replay_day, small_model):
    """Another process holding customer_today's write lock: StoreUnavailable in time."""
    import sqlite3  # noqa: PLC0415
    import time  # noqa: PLC0415

    from payments_ml.feature_store.online_store import view_path  # noqa: PLC0415

    scorer = Scorer(small_model, replay_day["store"], timeout_s=0.3)
    tx = replay_day["today"].iloc[:1]
    holder = sqlite3.connect(view_path(replay_day["store"].config, "customer_today"))
    holder.execute("BEGIN IMMEDIATE")
    try:
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked by another writer for over 0.3 s"):
            scorer.score(tx)
        assert time.monotonic() - start < 1.0
    finally:
        holder.rollback()
        holder.close()
    assert scorer.score(tx).new.all()
