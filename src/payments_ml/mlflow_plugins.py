"""Feast's MLflow plugin, loaded when it is used rather than in every `kedro run`.

Feast registers an MLflow request-header provider (entry point
``mlflow.request_header_provider``: ``feast.infra.data_sources.mlflow.auth``), and
MLflow loads every such provider when its request-header registry is imported, which
kedro-mlflow does at the start of every `kedro run`. Loading it imports the whole of
Feast: about 4 s of each run's start, measured with ``python -X importtime`` on 2 cores,
even for runs that never touch Feast or a tracking server. :func:`defer_feast_headers`
registers a stand-in that imports Feast's provider on the first request to a tracking
server (the only place its headers go), and behaves as it does from then on.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

_GROUP = "mlflow.request_header_provider"


def defer_feast_headers() -> None:
    """Make MLflow's plugin discovery hand out Feast's header provider lazily; call it
    before ``mlflow.tracking.request_header.registry`` is imported (settings.py does)."""
    from mlflow.utils import plugins  # noqa: PLC0415

    discover = plugins.get_entry_points
    if getattr(discover, "defers_feast", False):
        return

    def get_entry_points(group: str) -> Any:
        points = discover(group)
        if group != _GROUP:
            return points
        return [_Deferred(p) if p.value.startswith("feast.") else p for p in points]

    get_entry_points.defers_feast = True  # type: ignore[attr-defined]
    plugins.get_entry_points = get_entry_points


class _Deferred:
    """An entry point whose ``load()`` gives a provider class that imports the real one
    on first use."""

    def __init__(self, point: importlib.metadata.EntryPoint) -> None:
        self.name, self.value, self._point = point.name, point.value, point

    def load(self) -> type:
        from mlflow.tracking.request_header.abstract_request_header_provider import (  # noqa: PLC0415
            RequestHeaderProvider,
        )

        point = self._point

        class DeferredHeaders(RequestHeaderProvider):
            _real: Any = None

            def _provider(self) -> Any:
                if self._real is None:
                    self._real = point.load()()
                return self._real

            def in_context(self) -> bool:
                return self._provider().in_context()

            def request_headers(self) -> dict:
                return self._provider().request_headers()

        DeferredHeaders.__qualname__ = f"DeferredHeaders[{point.value}]"
        return DeferredHeaders
