"""The registry description of a model version: decision, windows, metrics, thresholds."""

from __future__ import annotations

from payments_ml.training.model_card import MISSING, version_description

METADATA = {
    "fit_window": ["2025-04-01", "2025-04-16"],
    "valid_window": ["2025-04-17", "2025-04-21"],
    "gap_window": ["2025-04-22", "2025-04-28"],
    "test_window": ["2025-04-29", "2025-05-05"],
    "train_rows": 41234,
    "valid_rows": 12001,
    "test_rows": 15321,
    "test_fraud_rate": 0.00523,
}


def _describe(decision: dict, metrics: dict) -> str:
    return version_description(
        decision=decision,
        metadata=METADATA,
        thresholds={"decline": 0.70123, "review": 0.23},
        metrics=metrics,
        k=20,
        commit="0123456789abcdef0123",
    )


def test_a_kept_champion_is_compared_column_by_column():
    decision = {
        "promoted": False,
        "champion_after": "2",
        "metric": "test_average_precision",
        "reason": "v3 does not beat the champion by more than min_improvement 0.0.",
    }
    text = _describe(
        decision,
        {
            "v3": {"average_precision": 0.51, "roc_auc": 0.9, "card_precision_at_20": 0.2},
            "baseline": {"average_precision": 0.3, "roc_auc": 0.8},
            "champion v2": {
                "average_precision": 0.61,
                "roc_auc": 0.92,
                "card_precision_at_20": 0.3,
            },
        },
    )
    lines = text.splitlines()
    assert lines[0] == (
        "**Not promoted**: v2 stays champion. "
        "v3 does not beat the champion by more than min_improvement 0.0."
    )
    assert "| metric | v3 | baseline | champion v2 |" in lines
    assert "| **average precision** (promotion) | 0.5100 | 0.3000 | 0.6100 |" in lines
    assert f"| card precision@20 | 0.2000 | {MISSING} | 0.3000 |" in lines
    assert "| train | 2025-04-01 to 2025-04-16 | 41,234 |" in lines
    assert "| test | 2025-04-29 to 2025-05-05 | 15,321 (0.52 % fraud) |" in lines
    assert "review \u2265 0.2300, decline \u2265 0.7012" in text
    assert "commit `0123456789ab`" in text


def test_a_first_champion_has_no_champion_column():
    decision = {
        "promoted": True,
        "champion_after": "1",
        "metric": "test_roc_auc",
        "reason": "No champion yet.",
    }
    text = _describe(decision, {"v1": {"average_precision": 0.5, "roc_auc": 0.9}})
    assert text.startswith("**Promoted to champion.** No champion yet.")
    assert "| metric | v1 |" in text.splitlines() and "champion v" not in text
    assert "| **ROC AUC** (promotion) | 0.9000 |" in text.splitlines()
