"""Scoring without HTTP: online features + today's state + request features -> model.

`Scorer.score` is what a Serve replica runs for a batch of requests, in one straight
line: read the online store once, build the features with the window code training
used, run the model, apply the one rule (a card an analyst confirmed as fraud is
blocked: its transactions are declined with the reason ``card_blocked``, whatever the
model says), record the new transactions (``customer_today`` and the
scored-transaction outbox, one atomic write), and return a `Scored` value that the
caller turns into answers, metrics and the dashboard. Tests and the replay check use it
directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from payments_ml.feature_store.backends import Backend, StoreUnavailable, open_backend
from payments_ml.features.online import request_columns
from payments_ml.features.today import entries_by_customer, today_columns, transaction_keys
from payments_ml.features.windows import to_ns
from payments_ml.labels.review import CARD_BLOCKED, blocked_mask, card_key
from payments_ml.serving.score_log import encode_record
from payments_ml.training.model import FraudModel

logger = logging.getLogger(__name__)

__all__ = ["Scored", "Scorer", "StoreUnavailable", "request_arrays"]


@dataclass(frozen=True)
class Scored:
    """What `Scorer.score` computed for a batch, in request order."""

    transaction_id: np.ndarray
    probability: np.ndarray
    decisions: list[str]
    reasons: list[list[dict[str, Any]]]
    features: dict[str, np.ndarray]
    used: np.ndarray  # the features as one float matrix, columns in `features` order
    new: np.ndarray  # False: the transaction was recorded before (a retry) or not at all
    model_version: str
    store_seconds: float  # online-store reads and the append
    model_seconds: float

    def __len__(self) -> int:
        return len(self.transaction_id)

    def answers(self) -> list[dict[str, Any]]:
        """The API's answer for each request (``Score`` in `serving.schemas`)."""
        names = list(self.features)
        used = np.where(np.isnan(self.used), None, self.used).tolist()
        return [
            {
                "transaction_id": tx_id,
                "fraud_probability": float(p),
                "decision": d,
                "model_version": self.model_version,
                "reasons": r,
                "features_used": dict(zip(names, values, strict=True)),
            }
            for tx_id, p, d, r, values in zip(
                self.transaction_id,
                self.probability,
                self.decisions,
                self.reasons,
                used,
                strict=True,
            )
        ]


class Scorer:
    """Scores transactions with a FraudModel and the online features of a Feast store.

    Args:
        model: The model (features, defaults, thresholds travel with it); assigning
            ``model`` swaps it between two batches, never within one.
        store: The Feast feature store holding the snapshot views and ``customer_today``.
        top_reasons: How many feature contributions each answer lists.
        record: Append each scored transaction to its customer's running state (and,
            with ``log``, to the scored-transaction outbox); False scores read-only.
        log: Write the log record of each new transaction with its append.
        timeout_s: The longest one online-store call may take.
        rules: Apply the card blocks of the review loop (docs/design.md, "Review loop").
    """

    def __init__(
        self,
        model: FraudModel,
        store: Any,
        *,
        top_reasons: int = 3,
        record: bool = True,
        log: bool = False,
        timeout_s: float = 0.5,
        rules: bool = True,
    ) -> None:
        self.model = model
        self.store = store
        self.top_reasons = top_reasons
        self.record = record
        self.log = log
        self.timeout_s = timeout_s
        self.rules = rules
        self.snapshot_ahead = 0  # requests scored against a snapshot from their future
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        """The online store's backend (opened at first use, so a replica starts even
        while the store is down)."""
        if self._backend is None:
            self._backend = open_backend(self.store, self.timeout_s)
        return self._backend

    def score(self, requests: pd.DataFrame | Mapping[str, Any]) -> Scored:
        """Probability, decision, reasons and features of each request, in order.

        Args:
            requests: ``transaction_id``, ``event_timestamp``, ``customer_id``,
                ``card_id``, ``merchant_id``, ``amount``: a DataFrame or a mapping of
                columns (lists or arrays; timestamps UTC).

        Raises:
            StoreUnavailable: The online store could not be read or written in time.
        """
        model = self.model  # read once: a new model installed meanwhile scores the next batch
        batch = request_arrays(requests)
        start = time.perf_counter()
        online = self.backend.read(batch["customer_id"], batch["merchant_id"])
        read_seconds = time.perf_counter() - start
        customers, event_ns, amount = batch["customer_id"], batch["event_ns"], batch["amount"]
        today = today_columns(online.today, customers, event_ns, amount, batch["tx_key"])
        features = request_columns(customers, event_ns, amount, online.features, today)
        self._warn_if_snapshot_is_ahead(event_ns, online.features["last_tx_ns"])

        start = time.perf_counter()
        matrix = model.matrix(features)
        probability = model.predict_matrix(matrix)
        decisions = [str(d) for d in model.decide(probability)]
        reasons = model.explain(matrix, self.top_reasons)
        model_seconds = time.perf_counter() - start
        read_start = time.perf_counter()
        decisions, reasons = self._apply_blocks(batch, decisions, reasons)
        read_seconds += time.perf_counter() - read_start
        used = np.column_stack([features[n] for n in features]).astype(float)

        start = time.perf_counter()
        new = self._record(batch, features, used, probability, decisions, version=model.version)
        return Scored(
            transaction_id=batch["transaction_id"],
            probability=probability,
            decisions=decisions,
            reasons=reasons,
            features=features,
            used=used,
            new=new,
            model_version=model.version,
            store_seconds=read_seconds + time.perf_counter() - start,
            model_seconds=model_seconds,
        )

    def _apply_blocks(
        self, batch: dict[str, np.ndarray], decisions: list[str], reasons: list[list[dict]]
    ) -> tuple[list[str], list[list[dict]]]:
        """The rule over the model: a blocked card's transactions are declined, with
        ``card_blocked`` as their first reason; the model's probability and reasons stay
        (the log and monitoring see what the model said). Read per batch from the online
        store, so a block reaches every replica at its next batch."""
        if not self.rules or "card_id" not in batch:
            return decisions, reasons
        cards = np.unique(batch["card_id"])
        blocks = self.backend.review().get([card_key(c) for c in cards.tolist()])
        blocked = blocked_mask(batch["card_id"], blocks)
        if not blocked.any():
            return decisions, reasons
        rule = {"feature": CARD_BLOCKED, "value": 1.0, "contribution": None}
        decisions = ["decline" if b else d for d, b in zip(decisions, blocked, strict=True)]
        reasons = [[rule, *r] if b else r for r, b in zip(reasons, blocked, strict=True)]
        return decisions, reasons

    def _record(
        self,
        batch: dict[str, np.ndarray],
        features: dict[str, np.ndarray],
        used: np.ndarray,
        probability: np.ndarray,
        decisions: list[str],
        *,
        version: str,
    ) -> np.ndarray:
        """Append the requests to today's rows (and their records to the log's outbox, in
        the same write); True for the requests not seen before (not a retry)."""
        new = np.zeros(len(batch["customer_id"]), bool)
        if not self.record:
            return new

        def outbox(rows: list[int]) -> bytes:
            return encode_record(
                batch,
                rows,
                features=used,
                names=list(features),
                probability=probability,
                decisions=decisions,
                model_version=version,
            )

        entries = entries_by_customer(
            batch["customer_id"], batch["event_ns"], batch["amount"], batch["tx_key"]
        )
        new[self.backend.append_today(entries, outbox if self.log else None)] = True
        return new

    def _warn_if_snapshot_is_ahead(self, event_ns: np.ndarray, last_tx_ns: list) -> None:
        """A snapshot holding transactions after the request: a past day is being scored."""
        last = np.array([-1 if v is None else v for v in last_tx_ns], np.int64)
        ahead = int((last > event_ns).sum())
        if ahead:
            self.snapshot_ahead += ahead
            logger.warning(
                "%d request(s) are older than their customer's online snapshot: features "
                "are wrong for them. Replaying a past day? Load that night's snapshot first "
                "(python -m payments_ml.stream --day YYYY-MM-DD does)",
                ahead,
            )

    def check_store(self) -> str | None:
        """None when the online store answers, else what is wrong."""
        try:
            self.backend.check()
        except StoreUnavailable as error:
            return str(error)
        return None


def request_arrays(requests: pd.DataFrame | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The request columns as arrays, with ``event_ns`` (int64 ns UTC) and ``tx_key``.

    Args:
        requests: A DataFrame, or a mapping of columns where ``event_timestamp`` holds
            UTC datetimes (what the API's pydantic models give).
    """
    stamps = requests["event_timestamp"]
    if not isinstance(stamps, pd.Series | np.ndarray):
        # Aware datetimes in UTC -> naive datetime64 (numpy treats naive as UTC).
        stamps = np.array([s.replace(tzinfo=None) for s in stamps], "datetime64[us]")
    transaction_id = np.asarray(requests["transaction_id"], object)
    batch = {
        "transaction_id": transaction_id,
        "customer_id": np.asarray(requests["customer_id"], np.int64),
        "merchant_id": np.asarray(requests["merchant_id"], np.int64),
        "amount": np.asarray(requests["amount"], float),
        "event_ns": to_ns(stamps),
        "tx_key": transaction_keys(transaction_id),
    }
    if "card_id" in requests:
        batch["card_id"] = np.asarray(requests["card_id"], np.int64)
    return batch
