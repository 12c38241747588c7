"""Scoring without HTTP: online features + today's state + request features -> model.

`Scorer` is what a Serve replica runs; tests and the replay check use it directly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from payments_ml.features.online import request_rows
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

    def features(self, requests: pd.DataFrame) -> pd.DataFrame:
        """The model input of each request, from the online store and the batch itself."""
        from payments_ml.feature_store.today import (  # noqa: PLC0415 (Feast imports slowly)
            today_transactions,
            transaction_key,
        )

        start = time.perf_counter()
        online = self.read_online(requests)
        self.timings.feature_store = time.perf_counter() - start
        customers = requests["customer_id"].to_numpy(np.int64)
        # A customer's stored row comes once per request of theirs: read it once.
        first = ~pd.Series(customers).duplicated().to_numpy()
        state = {name: [v for v, f in zip(online[name], first) if f] for name in TODAY_FEATURES}
        stored = today_transactions(state, customers[first])
        stored_keys = {k for keys in state["tx_keys"] if keys for k in keys}
        fresh = [transaction_key(t) not in stored_keys for t in requests["transaction_id"]]
        batch = requests.loc[fresh, ["customer_id", "event_timestamp", "amount"]]
        today = pd.concat([stored, batch], ignore_index=True)
        self._warn_if_snapshot_is_ahead(requests, online)
        return request_rows(requests, online, today)

    def _warn_if_snapshot_is_ahead(self, requests: pd.DataFrame, online: dict) -> None:
        """A snapshot holding transactions after the request: a past day is being scored."""
        from payments_ml.features.windows import to_ns  # noqa: PLC0415

        last = np.array([-1 if v is None else v for v in online["last_tx_ns"]], np.int64)
        ahead = int((last > to_ns(requests["event_timestamp"])).sum())
        if ahead:
            self.snapshot_ahead += ahead
            logger.warning(
                "%d request(s) are older than their customer's online snapshot: features "
                "are wrong for them. Replaying a past day? Load that night's snapshot first "
                "(python -m payments_ml.stream --day YYYY-MM-DD does)",
                ahead,
            )

    def score(self, requests: pd.DataFrame) -> list[dict[str, Any]]:
        """Probability, decision, reasons and features of each request, in order."""
        rows = self.features(requests)
        start = time.perf_counter()
        probability = self.model.predict_proba(rows)
        decisions = self.model.decide(probability)
        reasons = self.model.reasons(rows, self.top_reasons)
        self.timings.model = time.perf_counter() - start
        if self.update_today:
            self.append(requests)
        version = self.model.version
        names = list(rows.columns)
        records = [
            dict(zip(names, values, strict=True)) for values in rows.to_numpy(float).tolist()
        ]
        return [
            {
                "transaction_id": tx_id,
                "fraud_probability": float(p),
                "decision": str(d),
                "model_version": version,
                "reasons": r,
                "features_used": {k: _plain(v) for k, v in used.items()},
            }
            for tx_id, p, d, r, used in zip(
                requests["transaction_id"], probability, decisions, reasons, records, strict=True
            )
        ]

    def read_online(self, requests: pd.DataFrame) -> dict[str, list]:
        """The online rows of each request's customer and merchant (None: no row)."""
        try:
            return self.reader.read(
                {
                    "customer_id": requests["customer_id"].to_numpy(np.int64),
                    "merchant_id": requests["merchant_id"].to_numpy(np.int64),
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

    def append(self, requests: pd.DataFrame) -> None:
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
        probe = pd.DataFrame({"customer_id": [0], "merchant_id": [0]})
        try:
            self.read_online(probe)
        except StoreUnavailable as error:
            return str(error)
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
