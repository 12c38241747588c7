"""The review loop's rules, pure (docs/design.md, "Review loop"): the queue's order, what
a verdict or a block changes (a repeat changes nothing, a later verdict supersedes the
earlier one), and the review outcome of each day.

Inputs are the scorer's log rows (``transaction_id``, ``card_id``, ``fraud_probability``,
``decision``, ``scored_at``, ...) and the review state kept in the online store: one
value per key, ``tx:<transaction_id>`` (the latest analyst verdict) and ``card:<card_id>``
(the card's block).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

REVIEW = "review"  # the scorer's decision that sends a transaction to analysts
STATUSES = ("pending", "fraud", "genuine")
CARD_BLOCKED = "card_blocked"  # the reason of a transaction declined by a card's block


def tx_key(transaction_id: str) -> str:
    """The review-state key of a transaction's latest verdict."""
    return f"tx:{transaction_id}"


def card_key(card_id: int) -> str:
    """The review-state key of a card's block."""
    return f"card:{int(card_id)}"


def card_status(verdicts: list[dict[str, Any] | None]) -> str:
    """A queued card's status from the verdicts of its flagged transactions: ``fraud`` as
    soon as one is confirmed fraud (the card is blocked: nothing left to decide),
    ``pending`` while one has no verdict, else ``genuine``."""
    if any(v is not None and v["is_fraud"] for v in verdicts):
        return "fraud"
    if any(v is None for v in verdicts):
        return "pending"
    return "genuine"


def queue_cards(flagged: pd.DataFrame, verdicts: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per card of the flagged transactions, most suspicious first.

    Args:
        flagged: Log rows the scorer sent to review.
        verdicts: The state's values by key (``tx:<id>``).

    Returns:
        ``card_id``, ``customer_id``, ``max_probability``, ``transactions``,
        ``first_flagged_at``, ``status``, ``verdict_at`` (the card's first verdict or
        NaT), ordered by ``max_probability`` descending, then ``card_id``.
    """
    columns = [
        "card_id",
        "customer_id",
        "max_probability",
        "transactions",
        "first_flagged_at",
        "status",
        "verdict_at",
    ]
    if flagged.empty:
        return pd.DataFrame(columns=columns)
    rows = flagged.assign(
        verdict=[verdicts.get(tx_key(t)) for t in flagged["transaction_id"]],
        scored_at=pd.to_datetime(flagged["scored_at"], utc=True),
    )
    rows["verdict_at"] = pd.to_datetime(
        [v["first_at"] if v else None for v in rows["verdict"]], utc=True
    )
    cards = rows.groupby("card_id", sort=False).agg(
        customer_id=("customer_id", "first"),
        max_probability=("fraud_probability", "max"),
        transactions=("transaction_id", "size"),
        first_flagged_at=("scored_at", "min"),
        verdict_at=("verdict_at", "min"),
        status=("verdict", lambda v: card_status(list(v))),
    )
    cards = cards.reset_index().sort_values(
        ["max_probability", "card_id"], ascending=[False, True], kind="stable"
    )
    return cards[columns].reset_index(drop=True)


def page_of(cards: pd.DataFrame, status: str, page: int, size: int) -> tuple[pd.DataFrame, int]:
    """The cards of one page (1-based) among those of ``status`` (``all``: every one);
    and how many cards the filter keeps."""
    if status not in (*STATUSES, "all"):
        raise ValueError(f"status must be one of {', '.join(STATUSES)} or all, got {status!r}")
    kept = cards if status == "all" else cards[cards["status"] == status]
    start = (max(page, 1) - 1) * size
    return kept.iloc[start : start + size], len(kept)


def verdict_changes(
    current: dict[str, dict[str, Any]],
    transaction_ids: list[str],
    verdict: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """The new values of the transactions whose verdict changes: a transaction whose
    latest verdict is already ``verdict["is_fraud"]`` is left as it is (a repeated click
    changes nothing); another verdict supersedes it, keeping when the first came.

    Args:
        current: The state's values by key (``tx:<id>``).
        transaction_ids: The transactions the analyst judged.
        verdict: ``is_fraud``, ``analyst``, ``note``, ``at`` (ISO time), ``card_id``.
    """
    changes = {}
    for transaction_id in dict.fromkeys(transaction_ids):
        key = tx_key(transaction_id)
        before = current.get(key)
        if before is not None and before["is_fraud"] == verdict["is_fraud"]:
            continue
        first_at = before["first_at"] if before else verdict["at"]
        changes[key] = {**verdict, "first_at": first_at}
    return changes


def block_change(
    before: dict[str, Any] | None, blocked: bool, analyst: str, at: str, note: str | None
) -> dict[str, Any] | None:
    """The card's new block value, or None when it already is ``blocked`` (nothing to do)."""
    if bool(before and before["blocked"]) == blocked:
        return None
    return {"blocked": blocked, "analyst": analyst, "at": at, "note": note}


def audit_entry(
    analyst: str, at: str, action: str, key: str, *, before: Any, after: Any
) -> dict[str, Any]:
    """One line of the audit log: who, when, what, before and after."""
    return {
        "at": at,
        "analyst": analyst,
        "action": action,
        "key": key,
        "before": before,
        "after": after,
    }


def blocked_mask(card_ids: np.ndarray, blocks: dict[str, dict[str, Any]]) -> np.ndarray:
    """True for the transactions whose card is blocked."""
    return np.array([bool(blocks.get(card_key(c), {}).get("blocked")) for c in card_ids.tolist()])


def review_outcome(cards_by_day: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """Per day: the review's live precision (share of reviewed cards confirmed fraud),
    the queue's length (cards pending) and the time from flag to verdict.

    Args:
        cards_by_day: :func:`queue_cards` of each day's flagged transactions.
    """
    outcome = []
    for day, cards in sorted(cards_by_day.items()):
        decided = cards[cards["status"] != "pending"]
        fraud = int((decided["status"] == "fraud").sum())
        waited = (decided["verdict_at"] - decided["first_flagged_at"]).dt.total_seconds()
        outcome.append(
            {
                "day": day,
                "cards_flagged": len(cards),
                "cards_reviewed": len(decided),
                "cards_confirmed_fraud": fraud,
                "review_precision": round(fraud / len(decided), 4) if len(decided) else None,
                "queue_length": len(cards) - len(decided),
                "median_minutes_to_verdict": round(float(waited.median()) / 60, 2)
                if len(decided)
                else None,
            }
        )
    return outcome


def verdicts_from_reports(reports: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The review state's verdicts rebuilt from the feed's analyst reports (the latest
    verdict of each transaction, with the time of its first report): what monitoring
    reads, where serving reads the online store."""
    rows = reports[reports["source"] == "analyst"].sort_values("reported_at", kind="stable")
    verdicts: dict[str, dict[str, Any]] = {}
    for row in rows.itertuples(index=False):
        at = pd.Timestamp(row.reported_at).isoformat()
        change = verdict_changes(
            verdicts,
            [row.transaction_id],
            {"is_fraud": bool(row.is_fraud), "analyst": getattr(row, "analyst", None), "at": at},
        )
        verdicts.update(change)
    return verdicts
