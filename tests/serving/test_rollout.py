"""A new champion reaches the running scorer by itself, under load, and so does a rollback.

Two replicas built by `build_app` (as `kedro run --pipelines serving` builds them) follow
``models:/fraud_model@champion`` in a real MLflow registry (SQLite in a temporary folder)
with ``serving.model_watch_s`` = 1 s, while a client sends a steady 40 requests/s to
127.0.0.1. The alias moves to version 2 (a promotion), then back to 1 (a rollback).
"""

from __future__ import annotations

import contextlib
import logging
import time

import pytest
import requests

from tests.conftest import free_port
from tests.serving.conftest import stop_serve
from tests.serving.load import request_body, steady_load

pytestmark = pytest.mark.slow

logger = logging.getLogger(__name__)
APP = "rollout"
WATCH_S = 1.0
# The stated bound: every answer sent this long after the alias moved carries the new
# version (a look at the alias every WATCH_S, then the load and warm-up of the version,
# about 0.3 s alone, given 3 s more on a busy 2-core machine).
BOUND_S = WATCH_S + 3.0
RATE = 40  # requests per second
PROMOTE_AT, ROLL_BACK_AT, SECONDS = 2.0, 7.0, 12.0


@pytest.fixture(scope="module")
def scorer(ray_session, tmp_path_factory, snapshots, generated_transactions, registry):
    """The scorer of `build_app` (two replicas) over a mid-history day's snapshot."""
    from ray import serve  # noqa: PLC0415

    from payments_ml.serving.app import build_app  # noqa: PLC0415
    from tests.serving.conftest import mid_history_store  # noqa: PLC0415

    repo = mid_history_store(tmp_path_factory.mktemp("rollout"), snapshots, generated_transactions)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app(
        {
            "tracking_uri": registry["uri"],
            "feast": repo["config"],
            "num_replicas": 2,
            "replica_cpus": 0.5,
            "settings": {"model_watch_s": WATCH_S},
        }
    )
    serve.run(app, name=APP, route_prefix="/")
    rows = repo["day_rows"]
    yield {
        "url": f"http://127.0.0.1:{port}",
        "rows": rows.sort_values("event_timestamp").reset_index(drop=True),
        "client": registry["client"],
    }
    stop_serve()


def _move_alias(client, version: str, moved: dict[str, float], at: float):
    def move() -> None:
        start = time.perf_counter()
        client.set_registered_model_alias("fraud_model", "champion", version)
        moved[version] = at + time.perf_counter() - start  # when the registry had it

    return move


def _switch_latency(outcomes, since: float, until: float, old: str) -> float:
    """Seconds from ``since`` to the last request sent before ``until`` that was still
    answered by ``old`` (0: none was)."""
    late = [o.sent_s for o in outcomes if since <= o.sent_s < until and o.model_version == old]
    return max(late, default=since) - since


def _versions(url: str, route: str, times: int) -> set[str]:
    """The model versions /health answers over ``times`` calls (the replicas take turns)."""
    return {
        requests.get(f"{url}/{route}", timeout=10).json()["model_version"] for _ in range(times)
    }


def test_a_promotion_and_a_rollback_under_load_fail_no_request(scorer):
    url, rows = scorer["url"], scorer["rows"]
    _wait_for_version(url, "1")
    bodies = [
        request_body(rows.iloc[i % len(rows)], transaction_id=f"rollout-{i}-{time.time_ns()}")
        for i in range(int(RATE * SECONDS))
    ]
    moved: dict[str, float] = {}
    outcomes = steady_load(
        url,
        bodies,
        rate=RATE,
        at={
            PROMOTE_AT: _move_alias(scorer["client"], "2", moved, PROMOTE_AT),
            ROLL_BACK_AT: _move_alias(scorer["client"], "1", moved, ROLL_BACK_AT),
        },
    )

    failed = [o for o in outcomes if o.status != 200]
    assert failed == [], f"{len(failed)} of {len(outcomes)} failed: {failed[:5]}"
    promoted = _switch_latency(outcomes, moved["2"], moved["1"], old="1")
    rolled_back = _switch_latency(outcomes, moved["1"], SECONDS, old="2")
    logger.info(
        "%d requests at %d/s, 0 failed; new version in every answer %.2f s after the "
        "promotion, old one %.2f s after the rollback (bound %.1f s, watch %.1f s)",
        len(outcomes),
        RATE,
        promoted,
        rolled_back,
        BOUND_S,
        WATCH_S,
    )
    before = {o.model_version for o in outcomes if o.sent_s < moved["2"] - 0.1}
    assert before == {"1"}
    assert promoted <= BOUND_S, f"version 2 in every answer only {promoted:.2f} s after"
    assert rolled_back <= BOUND_S, f"version 1 in every answer only {rolled_back:.2f} s after"
    assert {o.model_version for o in outcomes if moved["2"] + BOUND_S < o.sent_s < moved["1"]} == {
        "2"
    }
    assert {o.model_version for o in outcomes if o.sent_s > moved["1"] + BOUND_S} == {"1"}
    assert _versions(url, "health", 6) == {"1"}
    assert _versions(url, "dashboard/data", 6) == {"1"}
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert 'scorer_model_info{version="1"} 1.0' in metrics
    assert "scorer_model_switches_total 2.0" in metrics


def _wait_for_version(url: str, version: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            if _versions(url, "health", 4) == {version}:
                return
        time.sleep(0.2)
    pytest.fail(f"the scorer did not answer /health with version {version}")
