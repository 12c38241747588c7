"""The analysts' review loop on the scorer (docs/design.md, "Review loop").

`ReviewDesk` builds the queue from the scored-transactions log (the transactions the
scorer sent to ``review``, grouped by card, most suspicious card first), records
verdicts (first in the labels feed, durably, then in the online store's review state
with an audit entry) and blocks or unblocks cards. `add_review_routes` puts it on a
replica's HTTP API; writes need an analyst's token (`authenticate`).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at run time.
import hashlib
import hmac
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from payments_ml.feature_store.backends import ReviewState
from payments_ml.labels import review as rules
from payments_ml.labels.feed import append_reports
from payments_ml.training.model import FraudModel

logger = logging.getLogger(__name__)
_PAGE = Path(__file__).with_name("review.html").read_text(encoding="utf-8")
_LIST = ["transaction_id", "event_timestamp", "card_id", "merchant_id", "amount"]
_LIST += ["fraud_probability", "decision"]
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_OUTCOME = ["transaction_id", "card_id", "customer_id", "fraud_probability", "decision"]
_OUTCOME += ["scored_at"]


class VerdictRequest(BaseModel):
    """An analyst's verdict on some flagged transactions of one card (all of the card's
    queued ones for a verdict on the card)."""

    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="the queue's day (event_date)")
    card_id: int = Field(ge=0)
    transaction_ids: list[str] = Field(min_length=1, max_length=1000)
    verdict: Literal["fraud", "genuine"]
    note: str | None = Field(default=None, max_length=2000)


class BlockRequest(BaseModel):
    """Why a card is blocked or unblocked (kept in the audit log)."""

    note: str | None = Field(default=None, max_length=2000)


def token_digest(token: str) -> str:
    """What the configuration holds for an analyst's token (``serving.review.analysts``):
    its SHA-256, so that the configuration never holds the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(authorization: str | None, analysts: dict[str, str]) -> str:
    """The analyst whose token the ``Authorization: Bearer`` header carries.

    Raises:
        HTTPException: 401 when no analyst is configured, the header is missing or the
            token is no analyst's.
    """
    challenge = {"WWW-Authenticate": "Bearer"}
    if not analysts:
        raise HTTPException(
            401,
            "no analyst may write: none is configured (serving.review.analysts: name -> "
            "SHA-256 of their token; docs/runbook.md, 'Review queue')",
            challenge,
        )
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401, "sign in: send your analyst token as 'Authorization: Bearer <token>'", challenge
        )
    digest = token_digest(token.strip())
    for name, expected in analysts.items():
        if hmac.compare_digest(digest, str(expected).lower()):
            return name
    raise HTTPException(401, "this token is no analyst's; check it or ask for one", challenge)


class ReviewDesk:
    """The queue, the verdicts and the blocks of one replica.

    Args:
        state: Opens the online store's review state (called at each use until it works).
        score_log: The scored-transactions log's folder (``event_date=D`` partitions).
        labels: The labels feed's folder, where verdicts are written.
        model: The model in use (its features and reasons for the queue's transactions).
        analysts: Analyst name -> SHA-256 of their token (`token_digest`).
        history: How many of a customer's latest transactions the queue shows.
    """

    def __init__(
        self,
        state: Callable[[], ReviewState],
        *,
        score_log: str,
        labels: str | None,
        model: Callable[[], FraudModel],
        analysts: dict[str, str],
        history: int = 10,
    ) -> None:
        self.state = state
        self.score_log = Path(score_log)
        self.labels = labels
        self.model = model
        self.analysts = dict(analysts or {})
        self.history = history

    def days(self) -> list[str]:
        """The days the log holds, latest first."""
        if not self.score_log.is_dir():
            return []
        found = [p.name.partition("=")[2] for p in self.score_log.glob("event_date=*")]
        return sorted(found, reverse=True)

    def day_rows(self, day: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The log's rows of one day (empty when it has none yet), all or ``columns``."""
        folder = self.score_log / f"event_date={day}"
        if not folder.is_dir() or not any(folder.glob("*.parquet")):
            return pd.DataFrame(columns=columns or [*_LIST, "customer_id", "scored_at"])
        return pq.read_table(folder, columns=columns).to_pandas()

    def queue(self, day: str | None, status: str, page: int, size: int) -> dict[str, Any]:
        """One page of the queue of ``day`` (default: the latest), cards of ``status``."""
        if day is not None and not _DAY.fullmatch(day):
            raise ValueError(f"day must be YYYY-MM-DD, got {day!r}")
        days = self.days()
        day = day or (days[0] if days else None)
        rows = self.day_rows(day) if day else pd.DataFrame()
        flagged = rows[rows["decision"] == rules.REVIEW] if len(rows) else rows
        state = self.state()
        verdicts = state.get([rules.tx_key(t) for t in flagged.get("transaction_id", [])])
        cards = rules.queue_cards(flagged, verdicts)
        shown, total = rules.page_of(cards, status, page, size)
        blocks = state.get([rules.card_key(c) for c in shown["card_id"]])
        return {
            "day": day,
            "days": days,
            "status": status,
            "page": page,
            "size": size,
            "total": total,
            "counts": {s: int((cards["status"] == s).sum()) for s in rules.STATUSES},
            "cards": [
                self._card(card, flagged, rows, verdicts, blocks)
                for card in shown.to_dict("records")
            ],
        }

    def _card(
        self,
        card: dict[str, Any],
        flagged: pd.DataFrame,
        rows: pd.DataFrame,
        verdicts: dict[str, Any],
        blocks: dict[str, Any],
    ) -> dict[str, Any]:
        own = flagged[flagged["card_id"] == card["card_id"]].sort_values("event_timestamp")
        history = rows[rows["customer_id"] == card["customer_id"]]
        history = history.sort_values("event_timestamp", ascending=False).head(self.history)
        return {
            **{k: _plain(v) for k, v in card.items()},
            "block": blocks.get(rules.card_key(card["card_id"])),
            "transactions": self._explained(own, verdicts),
            "history": [{k: _plain(r[k]) for k in _LIST} for r in history.to_dict("records")],
        }

    def _explained(self, own: pd.DataFrame, verdicts: dict[str, Any]) -> list[dict[str, Any]]:
        """The card's flagged transactions with their features, the model's reasons (its
        contributions recomputed from the logged model input) and their verdicts."""
        model = self.model()
        names = [n for n in model.features if n in own.columns]
        reasons = model.explain(model.matrix(own[names])) if len(own) else []
        return [
            {
                **{k: _plain(row[k]) for k in _LIST},
                "features": {n: _plain(row[n]) for n in names},
                "reasons": why,
                "verdict": verdicts.get(rules.tx_key(row["transaction_id"])),
            }
            for row, why in zip(own.to_dict("records"), reasons, strict=True)
        ]

    def record_verdict(self, analyst: str, request: VerdictRequest) -> dict[str, Any]:
        """Write the verdict's reports to the labels feed (durably), then the review
        state (a fraud verdict blocks the card) with its audit entries, in one step."""
        if not self.labels:
            raise HTTPException(
                503,
                "verdicts cannot be recorded: serving.labels_path is not set; set it "
                "to the labels feed (globals paths.labels) and redeploy",
            )
        self._check_card(request)
        at = datetime.now(UTC).isoformat()
        verdict = {
            "is_fraud": request.verdict == "fraud",
            "analyst": analyst,
            "note": request.note,
            "at": at,
            "card_id": request.card_id,
        }
        state = self.state()
        keys = [rules.tx_key(t) for t in request.transaction_ids]
        pending = rules.verdict_changes(state.get(keys), request.transaction_ids, verdict)
        if pending:  # the feed first: a verdict the page confirms is a label
            self._write_reports(list(pending), verdict)
        card = rules.card_key(request.card_id)
        values, _ = state.update(
            [*keys, card], lambda current: _decide(current, request.transaction_ids, verdict)
        )
        changed = [k.removeprefix("tx:") for k in values if k.startswith("tx:")]
        logger.info(
            "Verdict %s by %s on %d transaction(s) of card %d",
            request.verdict,
            analyst,
            len(changed),
            request.card_id,
        )
        return {
            "changed": changed,
            "unchanged": [t for t in request.transaction_ids if t not in changed],
            "card": state.get([card]).get(card),
            "at": at,
        }

    def _write_reports(self, keys: list[str], verdict: dict[str, Any]) -> None:
        reports = pd.DataFrame(
            {
                "transaction_id": [k.removeprefix("tx:") for k in keys],
                "is_fraud": verdict["is_fraud"],
                "reported_at": pd.Timestamp(verdict["at"]),
                "source": "analyst",
                "analyst": verdict["analyst"],
                "note": verdict["note"],
            }
        )
        append_reports(self.labels, reports)

    def _check_card(self, request: VerdictRequest) -> None:
        rows = self.day_rows(request.day)
        known = set(rows.loc[rows["card_id"] == request.card_id, "transaction_id"])
        unknown = [t for t in request.transaction_ids if t not in known]
        if unknown:
            raise HTTPException(
                422,
                f"transaction(s) {', '.join(unknown[:5])} are not card {request.card_id}'s in "
                f"the scored log of {request.day}; reload the queue",
            )

    def set_block(self, analyst: str, card_id: int, blocked: bool, note: str | None) -> dict:
        """Block or unblock a card (nothing changes, nothing is audited, when it already is)."""
        at = datetime.now(UTC).isoformat()
        key = rules.card_key(card_id)

        def decide(current: dict[str, Any]) -> tuple[dict[str, Any], list[dict]]:
            after = rules.block_change(current.get(key), blocked, analyst, at, note)
            if after is None:
                return {}, []
            action = "block" if blocked else "unblock"
            return {key: after}, [
                rules.audit_entry(analyst, at, action, key, before=current.get(key), after=after)
            ]

        values, _ = self.state().update([key], decide)
        logger.info("Card %d %s by %s", card_id, "blocked" if blocked else "unblocked", analyst)
        return {
            "card_id": card_id,
            "changed": bool(values),
            "block": self.state().get([key]).get(key),
        }

    def outcome(self, days: int = 7) -> list[dict[str, Any]]:
        """The review outcome of the latest ``days`` days of the log."""
        state = self.state()
        by_day = {}
        for day in self.days()[:days]:
            rows = self.day_rows(day, _OUTCOME)
            flagged = rows[rows["decision"] == rules.REVIEW]
            verdicts = state.get([rules.tx_key(t) for t in flagged["transaction_id"]])
            by_day[day] = rules.queue_cards(flagged, verdicts)
        return rules.review_outcome(by_day)


def _decide(
    current: dict[str, Any], transaction_ids: list[str], verdict: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A verdict's changes to the review state and their audit entries: the transactions
    whose verdict changes, and a block of the card on a new fraud verdict."""
    analyst, at = verdict["analyst"], verdict["at"]
    values = rules.verdict_changes(current, transaction_ids, verdict)
    entries = [
        rules.audit_entry(analyst, at, "verdict", k, before=current.get(k), after=v)
        for k, v in values.items()
    ]
    card = rules.card_key(verdict["card_id"])
    if verdict["is_fraud"] and values:
        block = rules.block_change(current.get(card), True, analyst, at, "fraud verdict")
        if block is not None:
            values[card] = block
            entries.append(
                rules.audit_entry(analyst, at, "block", card, before=current.get(card), after=block)
            )
    return values, entries


def _plain(value: Any) -> Any:
    """A log value as JSON: numbers as Python numbers, times in ISO 8601, null for a
    missing one (NaN, NaT)."""
    if value is None or (isinstance(value, float | np.floating | type(pd.NaT)) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def add_review_routes(api: FastAPI, desk: ReviewDesk) -> None:
    """``/review`` (the page), ``/review/queue``, ``/review/outcome`` and the
    authenticated writes (``/review/verdicts``, ``/review/cards/{id}/block|unblock``,
    ``/review/audit``) on ``api``. Sync routes: FastAPI runs them in its thread pool, so
    their file and store I/O never holds up scoring."""

    def page() -> HTMLResponse:
        return HTMLResponse(_PAGE)

    def queue(
        day: str | None = None, status: str = "pending", page: int = 1, size: int = 20
    ) -> dict:
        try:
            return desk.queue(day, status, page, min(max(size, 1), 200))
        except ValueError as error:
            raise HTTPException(422, str(error)) from error

    def verdicts(request: Request, body: VerdictRequest) -> dict:
        analyst = authenticate(request.headers.get("authorization"), desk.analysts)
        return desk.record_verdict(analyst, body)

    def block(request: Request, card_id: int, body: BlockRequest) -> dict:
        analyst = authenticate(request.headers.get("authorization"), desk.analysts)
        return desk.set_block(analyst, card_id, True, body.note)

    def unblock(request: Request, card_id: int, body: BlockRequest) -> dict:
        analyst = authenticate(request.headers.get("authorization"), desk.analysts)
        return desk.set_block(analyst, card_id, False, body.note)

    def audit(request: Request, limit: int = 100) -> dict:
        analyst = authenticate(request.headers.get("authorization"), desk.analysts)
        return {"analyst": analyst, "entries": desk.state().audit(min(max(limit, 1), 1000))}

    # Out of the OpenAPI schema, as /dashboard: the scorer's schema is its scoring
    # contract; these routes are in docs/design.md ("Review loop").
    hidden: dict[str, Any] = {"include_in_schema": False}
    api.add_api_route("/review", page, response_class=HTMLResponse, **hidden)
    api.add_api_route("/review/queue", queue, **hidden)
    api.add_api_route("/review/outcome", lambda: {"days": desk.outcome()}, **hidden)
    api.add_api_route("/review/verdicts", verdicts, methods=["POST"], **hidden)
    api.add_api_route("/review/cards/{card_id}/block", block, methods=["POST"], **hidden)
    api.add_api_route("/review/cards/{card_id}/unblock", unblock, methods=["POST"], **hidden)
    api.add_api_route("/review/audit", audit, **hidden)


def main(argv: list[str] | None = None) -> int:
    """``python -m payments_ml.serving.review digest``: the SHA-256 of a token read from
    standard input, the value to put under ``serving.review.analysts``."""
    import sys  # noqa: PLC0415

    args = sys.argv[1:] if argv is None else argv
    if args != ["digest"]:
        sys.stderr.write("usage: echo -n TOKEN | python -m payments_ml.serving.review digest\n")
        return 2
    token = sys.stdin.read().strip()
    if not token:
        sys.stderr.write("no token on standard input; pipe one in (echo -n TOKEN | ...)\n")
        return 2
    sys.stdout.write(token_digest(token) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
