"""Metric functions against values computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from payments_ml.training import metrics as m

LABELS = np.array([1, 0, 1, 0, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.2, 0.1])


def test_average_precision_by_hand():
    # Ranked: 1 (P=1/1), 0, 1 (P=2/3), 0, 0 -> AP = (1 + 2/3) / 2
    assert m.average_precision(LABELS, SCORES) == pytest.approx((1 + 2 / 3) / 2)


def test_roc_auc_by_hand():
    # Pairs (fraud, genuine) ranked right: 0.9 beats all 3; 0.7 beats 0.2 and 0.1 -> 5 / 6
    assert m.roc_auc(LABELS, SCORES) == pytest.approx(5 / 6)


def test_card_precision_at_k_by_hand():
    frame = pd.DataFrame(
        {
            "event_day": [1, 1, 1, 1, 2, 2, 2],
            "card_id": [10, 10, 11, 12, 10, 13, 14],
            "is_fraud": [False, True, False, False, False, False, True],
        }
    )
    scores = np.array([0.9, 0.1, 0.8, 0.05, 0.3, 0.7, 0.6])
    # Day 1: card risk 10 -> 0.9 (has a fraud), 11 -> 0.8, 12 -> 0.05; top 2 = {10, 11}: 1/2
    # Day 2: 13 -> 0.7, 14 -> 0.6 (fraud), 10 -> 0.3; top 2 = {13, 14}: 1/2
    assert m.card_precision_at_k(frame, scores, k=2) == pytest.approx(0.5)
    # k=1: day 1 top card 10 (fraud) = 1, day 2 top card 13 = 0 -> 0.5; k=3: 1/3 and 1/3
    assert m.card_precision_at_k(frame, scores, k=1) == pytest.approx(0.5)
    assert m.card_precision_at_k(frame, scores, k=3) == pytest.approx(1 / 3)


def test_precision_recall_at_threshold_by_hand():
    at = m.precision_recall_at(LABELS, SCORES, 0.75)
    assert at == {"precision": 0.5, "recall": 0.5, "flagged_share": 0.4}
    assert m.precision_recall_at(LABELS, SCORES, 0.95)["precision"] == 0.0


def test_threshold_for_precision_is_the_lowest_reaching_it():
    assert m.threshold_for_precision(LABELS, SCORES, 1.0) == pytest.approx(0.9)
    assert m.threshold_for_precision(LABELS, SCORES, 0.6) == pytest.approx(0.7)  # 2/3 at 0.7
    assert m.threshold_for_precision(LABELS, SCORES, 0.4) == pytest.approx(0.1)  # 2/5 at 0.1


def test_unreachable_precision_flags_only_the_top_score(caplog):
    labels, scores = np.array([0, 1, 0]), np.array([0.9, 0.5, 0.1])
    assert m.threshold_for_precision(labels, scores, 0.9) == pytest.approx(0.9)
    assert "No threshold reaches precision 0.90" in caplog.text
