"""The promotion decision and the reason it gives, without a registry."""

from __future__ import annotations

from payments_ml.pipelines.training.nodes import promotion_decision


def _decide(new_value: float, champion_value: float | None, min_improvement: float = 0.01):
    return promotion_decision(
        name="fraud_model",
        version="4",
        metric="average_precision",
        new_value=new_value,
        champion_version=None if champion_value is None else "3",
        champion_value=champion_value,
        min_improvement=min_improvement,
    )


def test_the_first_version_becomes_champion():
    decision = _decide(0.4, None)
    assert decision["promoted"] and decision["champion_after"] == "4"
    assert decision["reason"] == (
        "No champion yet: v4 (test average_precision 0.4000) becomes the first."
    )


def test_a_version_must_beat_the_champion_by_more_than_the_margin():
    decision = _decide(0.605, 0.6)
    assert not decision["promoted"] and decision["champion_after"] == "3"
    assert decision["reason"] == (
        "v4 does not beat the champion by more than min_improvement 0.01: test "
        "average_precision 0.6050 against champion v3's 0.6000 on the same test window "
        "(+0.0050)."
    )


def test_a_better_version_is_promoted_and_says_by_how_much():
    decision = _decide(0.65, 0.6)
    assert decision["promoted"] and decision["champion_after"] == "4"
    assert decision["reason"].startswith("v4 beats the champion: test average_precision 0.6500")
    assert decision["reason"].endswith("(+0.0500, more than min_improvement 0.01).")
