"""The time split: windows, label knowledge, blocked cards, and no future information."""

from __future__ import annotations

import pandas as pd
import pytest

from payments_ml.features import windows as fw
from payments_ml.labels.feed import relabel
from payments_ml.pipelines.training.nodes import split_transactions, time_split

DAY = pd.Timedelta(days=1)


def test_windows_are_anchored_at_the_last_day(training_params):
    windows = time_split(100, 139, training_params)
    assert windows == {
        "test": [133, 139],
        "gap": [126, 132],
        "valid": [121, 125],
        "fit": [105, 120],
    }


def test_too_short_a_history_names_the_parameters(training_params):
    with pytest.raises(ValueError, match=r"train_days=21, delay_days=7, test_days=7.*lower"):
        time_split(110, 139, training_params)


def test_no_row_after_the_training_window_reaches_training(training_set, training_params):
    train, valid, test, split = split_transactions(training_set, pd.DataFrame(), training_params)
    test_start = test["event_timestamp"].min().normalize()
    assert train["event_timestamp"].max() < valid["event_timestamp"].min()
    assert valid["event_timestamp"].max() < test_start - training_params["delay_days"] * DAY
    # Every training label was known at the test start, when the model is trained.
    frauds = pd.concat([train, valid]).query("label")
    assert (frauds["label_available_at"] < test_start).all()
    assert split["train_rows"] == len(train) and len(test) > 0 and train["label"].sum() > 20


def test_changing_the_future_changes_nothing_in_training(training_set, training_params):
    """Rewrite every label and feature after the training window: train/valid stay equal."""
    train, valid, _, split = split_transactions(training_set, pd.DataFrame(), training_params)
    future = training_set["event_timestamp"] >= pd.Timestamp(split["gap_window"][0], tz="UTC")
    rewritten = training_set.copy()
    rewritten.loc[future, "is_fraud"] = ~rewritten.loc[future, "is_fraud"]
    rewritten.loc[future, "customer_tx_count_30d"] = 999
    rewritten.loc[future, "label_available_at"] = rewritten.loc[future, "event_timestamp"]
    train2, valid2, _, _ = split_transactions(rewritten, pd.DataFrame(), training_params)
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(valid, valid2)


def test_frauds_reported_after_the_test_start_count_as_genuine(training_set, training_params):
    _, _, _, split = split_transactions(training_set, pd.DataFrame(), training_params)
    late = training_set.copy()
    cutoff = pd.Timestamp(split["test_window"][0], tz="UTC")
    in_valid = late["event_timestamp"] >= pd.Timestamp(split["valid_window"][0], tz="UTC")
    target = late.index[late["is_fraud"] & in_valid & (late["event_timestamp"] < cutoff)][:3]
    late.loc[target, "label_available_at"] = cutoff + DAY
    _, valid, _, split_late = split_transactions(late, pd.DataFrame(), training_params)
    assert split_late["labels_not_yet_known"] == len(target) == 3
    hidden = valid.set_index("transaction_id").loc[late.loc[target, "transaction_id"]]
    assert hidden["is_fraud"].all() and not hidden["label"].any()


def test_cards_known_defrauded_before_a_test_day_leave_that_day(training_set, training_params):
    """With no look-back (null), a card leaves the test set from its first reported fraud."""
    training_params["known_fraud_lookback_days"] = None
    _, _, test, split = split_transactions(training_set, pd.DataFrame(), training_params)
    known = training_set[training_set["is_fraud"]].groupby("card_id")["label_available_at"].min()
    day_start = pd.to_datetime(test["event_day"] * fw.NS_DAY, utc=True)
    assert not (test["card_id"].map(known) < day_start).any()
    kept = training_set["event_timestamp"] >= pd.Timestamp(split["test_window"][0], tz="UTC")
    assert split["test_rows_of_known_defrauded_cards"] == kept.sum() - len(test) > 0
    assert test["transaction_id"].isin(training_set["transaction_id"]).all()  # hashed


def test_the_look_back_keeps_cards_whose_fraud_was_reported_long_ago(training_set, training_params):
    """A card reported 20 days before a test day is blocked with a 30-day look-back, in use
    again with a 10-day one; one reported on the day itself is not blocked that day."""
    _, _, test, split = split_transactions(training_set, pd.DataFrame(), training_params)
    day = pd.Timestamp(split["test_window"][0], tz="UTC")
    clean = training_set.groupby("card_id")["is_fraud"].transform("any").eq(False)
    on_day = training_set["event_timestamp"].between(day, day + DAY, inclusive="left")
    cards = training_set.loc[clean & on_day, "card_id"].drop_duplicates().iloc[:3].tolist()
    history = training_set.copy()
    for card, reported in zip(cards, [day - 20 * DAY, day - 5 * DAY, day + pd.Timedelta(hours=1)]):
        first = history.index[history["card_id"] == card][0]
        history.loc[first, ["is_fraud", "label_available_at"]] = [True, reported]

    def kept(lookback) -> set:
        training_params["known_fraud_lookback_days"] = lookback
        _, _, test, split = split_transactions(history, pd.DataFrame(), training_params)
        assert split["known_fraud_lookback_days"] == lookback
        on_first_day = test[test["event_day"] == fw.day_of(day.value)]
        return set(cards) & set(on_first_day["card_id"])

    assert kept(30) == {cards[2]}
    assert kept(10) == {cards[0], cards[2]}
    assert kept(None) == {cards[2]}


def test_a_test_set_emptied_by_the_rule_is_reported_and_warned_about(
    training_set, training_params, caplog
):
    training_params.update(known_fraud_lookback_days=None, max_dropped_test_share=0.0)
    _, _, test, split = split_transactions(training_set, pd.DataFrame(), training_params)
    dropped = split["test_rows_of_known_defrauded_cards"]
    assert split["test_share_of_known_defrauded_cards"] == round(dropped / (dropped + len(test)), 5)
    assert "training.known_fraud_lookback_days (now None)" in caplog.text
    caplog.clear()
    training_params["max_dropped_test_share"] = 1.0
    split_transactions(training_set, pd.DataFrame(), training_params)
    assert "known_fraud_lookback_days" not in caplog.text


def _feed_labels(rows: pd.DataFrame, verdicts: list[bool], at: list[pd.Timestamp]) -> pd.DataFrame:
    """transaction_labels (the labels stage's output) for ``rows``."""
    return pd.DataFrame(
        {
            "transaction_id": rows["transaction_id"].to_numpy(),
            "is_fraud": verdicts,
            "label_available_at": at,
            "source": "chargeback",
            "merchant_id": rows["merchant_id"].to_numpy(),
            "event_timestamp": rows["event_timestamp"].to_numpy(),
        }
    )


def test_training_labels_come_from_the_feed_from_their_report_on(training_set, training_params):
    """With a labels feed, a fraud counts in training only if reported before the test
    start (when the model is trained); the rows' own labels are no longer used."""
    _, _, _, split = split_transactions(training_set, pd.DataFrame(), training_params)
    test_start = pd.Timestamp(split["test_window"][0], tz="UTC")
    fit_start = pd.Timestamp(split["fit_window"][0], tz="UTC")
    genuine = training_set[~training_set["is_fraud"]]
    chosen = genuine[genuine["event_timestamp"] >= fit_start + DAY].head(2)
    labels = _feed_labels(chosen, [True, True], [test_start - DAY, test_start])
    train, valid, _, split = split_transactions(training_set, labels, training_params)
    label = pd.concat([train, valid]).set_index("transaction_id")["label"]
    known, late = chosen["transaction_id"]
    assert label[known] and not label[late]
    assert label.sum() == 1 and split["labels_not_yet_known"] == 1


def test_with_a_feed_an_unreported_inline_fraud_is_genuine(training_set):
    frauds = training_set[training_set["is_fraud"]]
    assert len(frauds) > 1
    analyst = _feed_labels(frauds.head(1), [False], [pd.Timestamp("2025-06-01", tz="UTC")])
    relabelled = relabel(training_set, analyst)
    assert not relabelled["is_fraud"].any()  # one overturned, the others never reported
    assert relabel(training_set, pd.DataFrame()) is training_set  # no feed: their own labels
