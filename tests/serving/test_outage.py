"""Online store outage on a real Redis: degraded health, 503, then recovery by itself."""

from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import free_port
from tests.feature_store.redis_server import start_redis
from tests.serving.conftest import stop_serve
from tests.serving.load import request_body

pytestmark = pytest.mark.slow


def _wait_for(check, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.2)


def test_store_outage_degrades_then_recovers(
    ray_session, tmp_path, snapshots, generated_transactions, small_model
):
    from ray import serve  # noqa: PLC0415

    from payments_ml.feature_store import store as fs  # noqa: PLC0415
    from payments_ml.serving.app import FraudScorer  # noqa: PLC0415
    from tests.feature_store.conftest import feast_config, make_repo  # noqa: PLC0415

    redis_port = free_port()
    server = start_redis(redis_port)
    try:  # the server stops whatever happens from here on
        (tmp_path / "files").mkdir()
        repo = make_repo(tmp_path / "files", snapshots, "packed_sqlite")  # the snapshot files
        config = feast_config(
            tmp_path / "redis",
            {"type": "redis", "connection_string": f"redis://127.0.0.1:{redis_port}/0"},
        )
        config["sources"] = repo["config"]["sources"]
        store = fs.open_store(config)
        store.apply(list(fs.definitions(config).values()))
        fs.write_online(
            store,
            store.get_feature_view("customer_snapshot"),
            fs.latest_rows(snapshots["customer"], "customer_id"),
        )
        try:
            port = free_port()
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            model = small_model
            serve.run(
                FraudScorer.bind(lambda: model, config, ray_metrics=False),
                name="outage",
                route_prefix="/",
            )
            url = f"http://127.0.0.1:{port}"
            row = generated_transactions.iloc[0]
            body = request_body(row, transaction_id="outage-1", amount=12.5)
            assert requests.post(f"{url}/score", json=body, timeout=30).status_code == 200
            assert requests.get(f"{url}/health", timeout=30).json()["status"] == "ok"

            server.terminate()
            server.wait(10)
            start = time.monotonic()
            down = requests.post(f"{url}/score", json=body, timeout=60)
            assert down.status_code == 503 and time.monotonic() - start < 1.0
            assert down.headers["Retry-After"] == "1"
            assert "Redis at 127.0.0.1" in down.json()["detail"]
            assert "could not be read" in down.json()["detail"]
            assert "resumes by itself" in down.json()["detail"]
            start = time.monotonic()
            health = requests.get(f"{url}/health", timeout=60)
            assert time.monotonic() - start < 1.0
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            assert health.json()["online_store"]["ok"] is False

            server = start_redis(redis_port)  # back, empty: scores go on with cold-start values
            _wait_for(lambda: requests.get(f"{url}/health", timeout=30).json()["status"] == "ok")
            again = requests.post(f"{url}/score", json=body | {"transaction_id": "outage-2"})
            assert again.status_code == 200
        finally:
            stop_serve()
    finally:
        server.terminate()
        server.wait(10)
