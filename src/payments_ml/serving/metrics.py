"""Scorer metrics: Prometheus text on /metrics, and the same in Ray's metrics (dashboard)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ScorerMetrics:
    """Requests, latency, decisions, online-store latency and model version of one replica.

    ``/metrics`` shows this replica's counts (Prometheus scrapes each replica, or the
    Ray dashboard's metrics, which aggregate every replica through Ray's exporter).
    """

    def __init__(self, ray_metrics: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.requests = PromCounter(
            "scorer_requests_total", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "scorer_request_latency_seconds",
            "HTTP request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = PromCounter(
            "scorer_decisions_total",
            "Scored transactions by decision",
            ["decision"],
            registry=self.registry,
        )
        self.store_latency = Histogram(
            "scorer_feature_store_latency_seconds",
            "Online store time per scored batch (reads and today's update)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "scorer_batch_size",
            "Transactions scored together (requests grouped by the replica, or /score/batch)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
            registry=self.registry,
        )
        self.model_info = Gauge(
            "scorer_model_info",
            "1 for the registry version the replica scores with",
            ["version"],
            registry=self.registry,
        )
        self.model_switches = PromCounter(
            "scorer_model_switches_total",
            "Times the replica replaced its model (the alias moved: a promotion or a rollback)",
            registry=self.registry,
        )
        self.model_load_failures = PromCounter(
            "scorer_model_load_failures_total",
            "Versions named by the alias that the replica could not load (it kept its model)",
            registry=self.registry,
        )
        self._ray = _RayMetrics() if ray_metrics else None

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if self._ray:
            self._ray.requests.inc(tags={"route": route, "status": str(status)})
            self._ray.latency.observe(seconds * 1000, tags={"route": route})

    def observe_scores(self, decisions: list[str], store_seconds: float) -> None:
        self.batch_size.observe(len(decisions))
        for decision, count in Counter(decisions).items():  # one update per decision kind
            self.decisions.labels(decision).inc(count)
            if self._ray:
                self._ray.decisions.inc(count, tags={"decision": decision})
        self.store_latency.observe(store_seconds)
        if self._ray:
            self._ray.store_latency.observe(store_seconds * 1000)

    def model_in_use(self, version: str) -> None:
        """The version this replica scores with (the only ``version`` label at 1)."""
        self.model_info.clear()
        self.model_info.labels(version).set(1)
        if self._ray:
            self._ray.model_info.set(1, tags={"version": version})

    def model_switched(self, previous: str, version: str) -> None:
        self.model_switches.inc()
        if self._ray:
            self._ray.model_info.set(0, tags={"version": previous})
            self._ray.model_switches.inc()
        self.model_in_use(version)

    def model_load_failed(self) -> None:
        self.model_load_failures.inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _RayMetrics:
    def __init__(self) -> None:
        from ray.serve import metrics  # noqa: PLC0415

        self.requests: Any = metrics.Counter(
            "scorer_requests", description="HTTP requests", tag_keys=("route", "status")
        )
        self.latency: Any = metrics.Histogram(
            "scorer_request_latency_ms",
            description="HTTP request latency (ms)",
            boundaries=[b * 1000 for b in LATENCY_BUCKETS],
            tag_keys=("route",),
        )
        self.decisions: Any = metrics.Counter(
            "scorer_decisions", description="Scored transactions", tag_keys=("decision",)
        )
        self.store_latency: Any = metrics.Histogram(
            "scorer_feature_store_latency_ms",
            description="Online store time per batch (ms)",
            boundaries=[b * 1000 for b in LATENCY_BUCKETS],
        )
        self.model_info: Any = metrics.Gauge(
            "scorer_model_info", description="1 for the version in use", tag_keys=("version",)
        )
        self.model_switches: Any = metrics.Counter(
            "scorer_model_switches", description="Model replacements (the alias moved)"
        )
