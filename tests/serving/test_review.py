"""The review loop in-process: the queue's order, idempotent and superseding verdicts
written to the labels feed, card blocks with their audit, who may write, and analyst
labels used from their reported_at on (docs/design.md, "Review loop")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import HTTPException

from payments_ml.feature_store.backends.packed_sqlite import SqliteReviewState
from payments_ml.features.definitions import FEATURES
from payments_ml.labels import feed
from payments_ml.labels import review as rules
from payments_ml.serving.review import (
    ReviewDesk,
    VerdictRequest,
    authenticate,
    main,
    token_digest,
)
from payments_ml.training.model import FraudModel
from tests.serving.conftest import fraud_model

DAY = "2025-06-28"
ANALYSTS = {"ana": token_digest("ana-secret"), "bo": token_digest("bo-secret")}


@pytest.fixture(scope="module")
def model() -> FraudModel:
    """A tiny model over the real feature list (the desk explains with it)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(FEATURES)))
    y = (x[:, 0] > 0.5).astype(float)
    thresholds = {"review": 0.3, "decline": 0.9}
    return fraud_model(x, y, thresholds=thresholds, version="1", rounds=5, num_leaves=4)


def _log(folder, rows: list[tuple]) -> pd.DataFrame:
    """Score-log rows (id, card, customer, probability, decision) as the scorer writes them."""
    frame = pd.DataFrame(
        rows, columns=["transaction_id", "card_id", "customer_id", "fraud_probability", "decision"]
    )
    start = pd.Timestamp(f"{DAY}T10:00:00Z")
    frame["event_timestamp"] = [start + pd.Timedelta(minutes=i) for i in range(len(frame))]
    frame["scored_at"] = frame["event_timestamp"]
    frame["merchant_id"] = 5
    frame["amount"] = 12.5
    frame["model_version"] = "1"
    for name in FEATURES:
        frame[name] = 1.0
    day = folder / f"event_date={DAY}"
    day.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), day / "scored-1.parquet")
    return frame


@pytest.fixture
def desk(tmp_path, model) -> ReviewDesk:
    state = SqliteReviewState(tmp_path / "online_store.review.db", timeout_s=1.0)
    _log(
        tmp_path / "scored",
        [
            ("t1", 11, 1, 0.40, "review"),
            ("t2", 22, 2, 0.80, "review"),
            ("t3", 11, 1, 0.95, "decline"),  # not queued: the scorer declined it
            ("t4", 33, 3, 0.80, "review"),  # ties card 22: the smaller card id first
            ("t5", 11, 1, 0.55, "review"),
            ("t6", 44, 4, 0.10, "approve"),
        ],
    )
    return ReviewDesk(
        lambda: state,
        score_log=str(tmp_path / "scored"),
        labels=str(tmp_path / "labels"),
        model=lambda: model,
        analysts=ANALYSTS,
    )


def _verdict(card: int, ids: list[str], verdict: str, note: str | None = None) -> VerdictRequest:
    return VerdictRequest(day=DAY, card_id=card, transaction_ids=ids, verdict=verdict, note=note)


def _feed(desk: ReviewDesk) -> pd.DataFrame:
    return pq.read_table(desk.labels).to_pandas().sort_values("reported_at", ignore_index=True)


def test_queue_lists_reviewed_cards_most_suspicious_first_with_reasons(desk):
    queue = desk.queue(None, "pending", page=1, size=2)
    assert queue["day"] == DAY and queue["total"] == 3
    assert [c["card_id"] for c in queue["cards"]] == [22, 33]  # 0.80 tie: card id order
    assert queue["cards"][0]["max_probability"] == pytest.approx(0.80)
    second = desk.queue(DAY, "pending", page=2, size=2)["cards"]
    (card,) = second
    assert card["card_id"] == 11 and card["max_probability"] == pytest.approx(0.55)
    assert card["verdict_at"] is None and card["first_flagged_at"] == f"{DAY}T10:00:00+00:00"
    assert [t["transaction_id"] for t in card["transactions"]] == ["t1", "t5"]  # not t3
    assert set(card["transactions"][0]["features"]) == set(FEATURES)
    assert all(r["contribution"] > 0 for t in card["transactions"] for r in t["reasons"])
    assert [h["transaction_id"] for h in card["history"]] == ["t5", "t3", "t1"]  # latest first


def test_a_repeated_verdict_changes_nothing(desk):
    first = desk.record_verdict("ana", _verdict(22, ["t2"], "fraud", "stolen"))
    again = desk.record_verdict("ana", _verdict(22, ["t2"], "fraud", "stolen"))
    assert first["changed"] == ["t2"] and again["changed"] == [] and again["unchanged"] == ["t2"]
    reports = _feed(desk)
    assert len(reports) == 1
    row = reports.iloc[0]
    assert (row["transaction_id"], row["is_fraud"], row["source"], row["analyst"]) == (
        "t2",
        True,
        "analyst",
        "ana",
    )
    assert row["note"] == "stolen" and row["reported_at"].isoformat() == first["at"]
    actions = [e["action"] for e in desk.state().audit(10)]
    assert actions == ["block", "verdict"]  # newest first; the repeat left no entry


def test_a_later_verdict_supersedes_and_both_stay_in_the_feed(desk):
    desk.record_verdict("ana", _verdict(11, ["t1", "t5"], "fraud"))
    later = desk.record_verdict("bo", _verdict(11, ["t5"], "genuine", "customer confirmed"))
    assert later["changed"] == ["t5"]
    reports = _feed(desk)
    assert reports["transaction_id"].tolist() == ["t1", "t5", "t5"]
    transactions = pd.DataFrame(
        {
            "transaction_id": ["t1", "t5"],
            "merchant_id": [5, 5],
            "event_timestamp": pd.to_datetime([f"{DAY}T10:00:00Z"] * 2),
        }
    )
    labels, quarantine = feed.resolve(reports, transactions)
    t5 = labels.set_index("transaction_id").loc["t5"]
    assert not t5["is_fraud"] and t5["label_available_at"].isoformat() == later["at"]
    assert quarantine["quarantine_reason"].str.startswith("superseded").tolist() == [True]
    verdict = desk.state().get(["tx:t5"])["tx:t5"]
    assert verdict["analyst"] == "bo" and verdict["first_at"] < verdict["at"]
    (audit,) = [e for e in desk.state().audit(10) if e["key"] == "tx:t5" and e["before"]]
    assert audit["before"]["is_fraud"] and not audit["after"]["is_fraud"]


def test_a_fraud_verdict_blocks_the_card_until_an_analyst_unblocks_it(desk):
    answer = desk.record_verdict("ana", _verdict(33, ["t4"], "fraud"))
    assert answer["card"]["blocked"] and answer["card"]["analyst"] == "ana"
    blocks = desk.state().get([rules.card_key(33), rules.card_key(22)])
    assert rules.blocked_mask(np.array([33, 22, 33]), blocks).tolist() == [True, False, True]
    assert desk.queue(DAY, "fraud", 1, 20)["cards"][0]["block"]["blocked"]
    assert not desk.set_block("ana", 33, True, None)["changed"]  # already blocked
    unblocked = desk.set_block("bo", 33, False, "card reissued")
    assert unblocked["changed"] and not unblocked["block"]["blocked"]
    last = desk.state().audit(1)[0]
    assert (last["action"], last["analyst"], last["before"]["blocked"]) == ("unblock", "bo", True)


def test_a_verdict_names_transactions_of_its_card(desk):
    with pytest.raises(HTTPException) as refused:
        desk.record_verdict("ana", _verdict(22, ["t1"], "fraud"))
    assert refused.value.status_code == 422 and "not card 22's" in refused.value.detail
    assert not Path(desk.labels).exists()  # nothing reached the feed


def test_only_a_configured_analyst_may_write():
    assert authenticate("Bearer bo-secret", ANALYSTS) == "bo"
    for header, message in [
        (None, "sign in"),
        ("Basic Ym86Ym8=", "sign in"),
        ("Bearer guess", "no analyst's"),
    ]:
        with pytest.raises(HTTPException) as refused:
            authenticate(header, ANALYSTS)
        assert refused.value.status_code == 401 and message in refused.value.detail
    with pytest.raises(HTTPException) as refused:
        authenticate("Bearer ana-secret", {})
    assert refused.value.status_code == 401 and "none is configured" in refused.value.detail


def test_the_digest_command_prints_what_the_configuration_holds(monkeypatch, capsys):
    import io  # noqa: PLC0415

    monkeypatch.setattr("sys.stdin", io.StringIO("ana-secret\n"))
    assert main(["digest"]) == 0
    assert capsys.readouterr().out.strip() == ANALYSTS["ana"]


def test_review_outcome_per_day(desk):
    desk.record_verdict("ana", _verdict(22, ["t2"], "fraud"))
    desk.record_verdict("ana", _verdict(33, ["t4"], "genuine"))
    (day,) = desk.outcome()
    assert day == {
        "day": DAY,
        "cards_flagged": 3,
        "cards_reviewed": 2,
        "cards_confirmed_fraud": 1,
        "review_precision": 0.5,
        "queue_length": 1,
        "median_minutes_to_verdict": day["median_minutes_to_verdict"],
    }
    assert day["median_minutes_to_verdict"] > 0  # flagged in 2025, judged now


def test_monitoring_rebuilds_the_verdicts_from_the_feed(desk):
    desk.record_verdict("ana", _verdict(11, ["t1"], "fraud"))
    desk.record_verdict("bo", _verdict(11, ["t1"], "genuine"))
    rebuilt = rules.verdicts_from_reports(_feed(desk))
    stored = desk.state().get(["tx:t1"])
    assert rebuilt["tx:t1"]["is_fraud"] is False
    assert rebuilt["tx:t1"]["first_at"] == stored["tx:t1"]["first_at"]


def test_analyst_labels_count_from_their_reported_at_in_training():
    """No leakage: a verdict reported after the test window starts is hidden from the
    training rows, one reported before is a label (days before a chargeback would be)."""
    from payments_ml.pipelines.training.nodes import split_transactions  # noqa: PLC0415

    days = pd.date_range("2025-01-01", periods=40, freq="D", tz="UTC") + pd.Timedelta(hours=12)
    rows = pd.DataFrame(
        {
            "transaction_id": [f"x{i}" for i in range(40)],
            "event_timestamp": days,
            "customer_id": 1,
            "card_id": np.arange(40),
            "merchant_id": 5,
            "amount": 10.0,
            "is_fraud": False,
            "label_available_at": days + pd.Timedelta(days=7),
            **{name: 0.0 for name in FEATURES},
        }
    )
    params = {"train_days": 20, "valid_days": 5, "test_days": 5, "delay_days": 7}
    cutoff = pd.Timestamp("2025-02-05T00:00:00Z")  # the first test day (days 35..39)
    # x22, x23: days 22-23 (training); one judged before the cutoff, one after.
    reports = pd.DataFrame(
        {
            "transaction_id": ["x22", "x23"],
            "is_fraud": [True, True],
            "reported_at": [cutoff - pd.Timedelta(hours=1), cutoff + pd.Timedelta(hours=1)],
            "source": "analyst",
        }
    )
    labels, _ = feed.resolve(reports, rows[["transaction_id", "merchant_id", "event_timestamp"]])
    train, valid, _, split = split_transactions(rows, labels, params)
    used = pd.concat([train, valid]).set_index("transaction_id")["label"]
    assert split["test_window"][0] == "2025-02-05"
    assert used["x22"] and not used["x23"] and split["labels_not_yet_known"] == 1
