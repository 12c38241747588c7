"""Scoring without HTTP: online features + today's state + request features -> model.

`Scorer` is what a Serve replica runs; tests and the replay check use it directly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from payments_ml.features.online import request_columns
from payments_ml.features.windows import to_ns
from payments_ml.training.model import FraudModel

logger = logging.getLogger(__name__)

TODAY_FEATURES = ["tx_ns", "amounts", "tx_keys"]


class StoreUnavailable(RuntimeError):
    """The online store could not be read or written; the request cannot be scored."""


@dataclass
class Timings:
    """Seconds spent in the online store and in the model by the last call."""

    feature_store: float = 0.0
    model: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class Scorer:
    """Scores transactions with a FraudModel and the online features of a Feast store.

    Args:
        model: The model (features, defaults, thresholds travel with it).
        store: The Feast feature store holding the snapshot views and ``customer_today``.
        top_reasons: How many feature contributions each answer lists.
        update_today: Append each scored transaction to its customer's running state.
    """

    def __init__(
        self, model: FraudModel, store: Any, top_reasons: int = 3, update_today: bool = True
    ) -> None:
        self.model = model
        self.store = store
        self.top_reasons = top_reasons
        self.update_today = update_today
        self.timings = Timings()
        self.snapshot_ahead = 0  # requests scored against a snapshot from their future
        self._reader: Any = None

    def features(self, requests: pd.DataFrame | Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The model input of each request, from the online store and the batch itself."""
        from payments_ml.feature_store.today import (  # noqa: PLC0415 (Feast imports slowly)
            today_transactions,
            transaction_key,
        )

        batch = request_arrays(requests)
        start = time.perf_counter()
        online = self.read_online(batch)
        self.timings.feature_store = time.perf_counter() - start
        customers = batch["customer_id"]
        # A customer's stored row comes once per request of theirs: read it once.
        first = _first_occurrences(customers)
        state = {name: [online[name][i] for i in first] for name in TODAY_FEATURES}
        stored = today_transactions(state, customers[first])
        stored_keys = {k for keys in state["tx_keys"] if keys for k in keys}
        fresh = np.array(
            [transaction_key(t) not in stored_keys for t in batch["transaction_id"]], bool
        )
        today = tuple(
            np.concatenate([kept, batch[name][fresh]])
            for kept, name in zip(stored, ("customer_id", "event_ns", "amount"), strict=True)
        )
        self._warn_if_snapshot_is_ahead(batch["event_ns"], online)
        return request_columns(customers, batch["event_ns"], batch["amount"], online, today)

    def _warn_if_snapshot_is_ahead(self, event_ns: np.ndarray, online: dict) -> None:
        """A snapshot holding transactions after the request: a past day is being scored."""
        last = np.array([-1 if v is None else v for v in online["last_tx_ns"]], np.int64)
        ahead = int((last > event_ns).sum())
        if ahead:
            self.snapshot_ahead += ahead
            logger.warning(
                "%d request(s) are older than their customer's online snapshot: features "
                "are wrong for them. Replaying a past day? Load that night's snapshot first "
                "(python -m payments_ml.stream --day YYYY-MM-DD does)",
                ahead,
            )

    def score(self, requests: pd.DataFrame | Mapping[str, Any]) -> list[dict[str, Any]]:
        """Probability, decision, reasons and features of each request, in order.

        Args:
            requests: ``transaction_id``, ``event_timestamp``, ``customer_id``,
                ``card_id``, ``merchant_id``, ``amount``: a DataFrame or a mapping of
                columns (lists or arrays; timestamps UTC).
        """
        batch = request_arrays(requests)
        features = self.features(batch)
        start = time.perf_counter()
        matrix = self.model.matrix(features)
        probability = self.model.predict_matrix(matrix)
        decisions = self.model.decide(probability)
        reasons = self.model.explain(matrix, self.top_reasons)
        self.timings.model = time.perf_counter() - start
        if self.update_today:
            self.append(batch)
        self.last = {"batch": batch, "features": features, "probability": probability}
        version = self.model.version
        names = list(features)
        used = np.column_stack([features[n] for n in names]).astype(float)
        used = np.where(np.isnan(used), None, used).tolist()
        return [
            {
                "transaction_id": tx_id,
                "fraud_probability": float(p),
                "decision": str(d),
                "model_version": version,
                "reasons": r,
                "features_used": dict(zip(names, values, strict=True)),
            }
            for tx_id, p, d, r, values in zip(
                batch["transaction_id"], probability, decisions, reasons, used, strict=True
            )
        ]

    def read_online(self, requests: Mapping[str, Any]) -> dict[str, list]:
        """The online rows of each request's customer and merchant (None: no row)."""
        try:
            return self.reader.read(
                {
                    "customer_id": np.asarray(requests["customer_id"], np.int64),
                    "merchant_id": np.asarray(requests["merchant_id"], np.int64),
                }
            )
        except Exception as error:
            raise StoreUnavailable(f"the online store could not be read: {error}") from error

    @property
    def reader(self) -> Any:
        """The online reader of the three views (resolved from the registry once)."""
        if self._reader is None:
            from payments_ml.feature_store.reader import OnlineReader  # noqa: PLC0415

            try:
                self._reader = OnlineReader(
                    self.store,
                    {
                        "customer_snapshot": "customer_id",
                        "merchant_snapshot": "merchant_id",
                        "customer_today": "customer_id",
                    },
                )
            except Exception as error:
                raise StoreUnavailable(
                    f"the feature registry could not be read: {error}"
                ) from error
        return self._reader

    def append(self, requests: Mapping[str, Any]) -> None:
        """Add the scored transactions to their customers' running state."""
        from payments_ml.feature_store.today import append_today  # noqa: PLC0415

        start = time.perf_counter()
        try:
            append_today(
                self.store, requests, self.reader.view("customer_today"), self.reader.online
            )
        except Exception as error:
            raise StoreUnavailable(
                f"the online store could not record the transactions: {error}"
            ) from error
        self.timings.feature_store += time.perf_counter() - start

    def check_store(self) -> str | None:
        """None when the online store answers a read, else the error."""
        probe = {"customer_id": [0], "merchant_id": [0]}
        try:
            self.read_online(probe)
        except StoreUnavailable as error:
            return str(error)
        return None


def request_arrays(requests: pd.DataFrame | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The request columns as arrays, with ``event_ns`` (int64 ns UTC) added.

    Args:
        requests: A DataFrame, or a mapping of columns where ``event_timestamp`` holds
            UTC datetimes (what the API's pydantic models give).
    """
    if isinstance(requests, dict) and "event_ns" in requests:
        return requests  # already converted
    stamps = requests["event_timestamp"]
    if not isinstance(stamps, pd.Series | np.ndarray):
        # Aware datetimes in UTC -> naive datetime64 (numpy treats naive as UTC).
        stamps = np.array([s.replace(tzinfo=None) for s in stamps], "datetime64[us]")
    batch = {
        "transaction_id": np.asarray(requests["transaction_id"], object),
        "customer_id": np.asarray(requests["customer_id"], np.int64),
        "merchant_id": np.asarray(requests["merchant_id"], np.int64),
        "amount": np.asarray(requests["amount"], float),
        "event_ns": to_ns(stamps),
    }
    if "card_id" in requests:
        batch["card_id"] = np.asarray(requests["card_id"], np.int64)
    batch["event_timestamp"] = batch["event_ns"].view("datetime64[ns]")
    return batch


def _first_occurrences(values: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each value, in input order."""
    if len(values) == 1:
        return np.zeros(1, np.int64)
    _, first = np.unique(values, return_index=True)
    return np.sort(first)
