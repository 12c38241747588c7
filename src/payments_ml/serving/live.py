"""Live figures of a scorer replica for the dashboard: per-second buckets of recent minutes.

Recording is a few dictionary updates per request; the summary (rates, error rate,
latency percentiles, decision mix, expected fraud rate, charts' series) is computed only
when the dashboard asks, every few seconds.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DECISIONS = ("approve", "review", "decline")
_SAMPLES_PER_SECOND = 200  # latency samples kept per second (enough for p95 of a second)


@dataclass
class _Second:
    second: int
    transactions: int = 0
    requests: int = 0
    errors: int = 0  # answered >= 400
    server_errors: int = 0  # answered >= 500 (the scorer's fault, not the sender's)
    probability_sum: float = 0.0
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    latencies: list[float] = field(default_factory=list)


class LiveStats:
    """What one replica scored during the last ``horizon_s`` seconds.

    Args:
        horizon_s: How far back the charts reach.
        clock: Seconds since the epoch (tests pass their own).
    """

    def __init__(self, horizon_s: int = 600, clock: Any = time.time) -> None:
        self.horizon_s = horizon_s
        self.clock = clock
        self.started = clock()
        self.total = 0
        self.last_scored: float | None = None
        self._seconds: deque[_Second] = deque()
        self._lock = threading.Lock()

    def _bucket(self) -> _Second:
        now = int(self.clock())
        if not self._seconds or self._seconds[-1].second != now:
            self._seconds.append(_Second(now))
            while self._seconds and self._seconds[0].second <= now - self.horizon_s:
                self._seconds.popleft()
        return self._seconds[-1]

    def observe_request(self, seconds: float, status: int) -> None:
        """One scoring request answered: its latency and HTTP status (>= 400 failed; a
        5xx failed on the scorer's side rather than the sender's)."""
        with self._lock:
            bucket = self._bucket()
            bucket.requests += 1
            bucket.errors += status >= 400  # noqa: PLR2004
            bucket.server_errors += status >= 500  # noqa: PLR2004
            if len(bucket.latencies) < _SAMPLES_PER_SECOND:
                bucket.latencies.append(seconds)

    def observe_scores(self, decisions: list[str], probabilities: list[float]) -> None:
        """Transactions scored, with their decisions and probabilities."""
        with self._lock:
            bucket = self._bucket()
            bucket.transactions += len(decisions)
            bucket.probability_sum += float(sum(probabilities))
            for decision in decisions:
                bucket.decisions[decision] = bucket.decisions.get(decision, 0) + 1
            self.total += len(decisions)
            self.last_scored = self.clock()

    def summary(self, window_s: int = 60, step_s: int = 5) -> dict[str, Any]:
        """Headline figures over the last ``window_s`` and chart series by ``step_s``."""
        now = int(self.clock())
        with self._lock:
            seconds = [s for s in self._seconds if s.second > now - self.horizon_s]
        recent = [s for s in seconds if s.second > now - window_s]
        transactions = sum(s.transactions for s in recent)
        latencies = np.array([x for s in recent for x in s.latencies]) * 1000
        decisions = {d: sum(s.decisions.get(d, 0) for s in recent) for d in DECISIONS}
        elapsed = max(1, min(window_s, now - int(self.started)))
        requests, errors = sum(s.requests for s in recent), sum(s.errors for s in recent)
        return {
            "now": self.clock(),
            "window_s": window_s,
            "transactions_per_s": transactions / elapsed,
            "requests_per_s": requests / elapsed,
            "requests": requests,
            "errors": errors,
            "server_errors": sum(s.server_errors for s in recent),
            "error_rate": errors / requests if requests else None,  # share answered >= 400
            "latency_ms": _percentiles(latencies),
            "decisions": decisions,
            "expected_fraud_rate": (
                sum(s.probability_sum for s in recent) / transactions if transactions else None
            ),
            "total_scored": self.total,
            "last_scored": self.last_scored,
            "series": _series(seconds, now, self.horizon_s, step_s),
        }


def _percentiles(latencies_ms: np.ndarray) -> dict[str, float | None]:
    if not len(latencies_ms):
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(latencies_ms, [50, 95])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2)}


def _series(seconds: list[_Second], now: int, horizon_s: int, step_s: int) -> dict[str, list]:
    """Per ``step_s`` slot of the horizon: rate, latency percentiles, decisions."""
    slots = horizon_s // step_s
    first = now - slots * step_s + 1
    by_slot: dict[int, list[_Second]] = {}
    for s in seconds:
        if s.second >= first:
            by_slot.setdefault((s.second - first) // step_s, []).append(s)
    out: dict[str, list] = {"t": [], "tx_per_s": [], "p50_ms": [], "p95_ms": []}
    out.update({d: [] for d in DECISIONS})
    for slot in range(slots):
        group = by_slot.get(slot, [])
        out["t"].append(first + slot * step_s)
        out["tx_per_s"].append(sum(s.transactions for s in group) / step_s)
        latency = _percentiles(np.array([x for s in group for x in s.latencies]) * 1000)
        out["p50_ms"].append(latency["p50"])
        out["p95_ms"].append(latency["p95"])
        for d in DECISIONS:
            out[d].append(sum(s.decisions.get(d, 0) for s in group))
    return out
