"""The Redis online store (the cluster environment's) against a real redis-server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from tests.feature_store.conftest import assert_bad_input_writes_nothing, feast_config

pytestmark = pytest.mark.slow


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip(
            "redis-server is not installed and apt-get is not available to install it (needs root)"
        )
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "update", "-qq"], check=True, env=env, capture_output=True, timeout=300
    )
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "redis-server"],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    return shutil.which("redis-server") or pytest.fail(
        "apt-get installed redis-server but it is not on PATH"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url():
    import redis  # noqa: PLC0415

    port = _free_port()
    server = subprocess.Popen(
        [
            _redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"redis-server did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_repo(tmp_path_factory, repo, redis_url):
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    root = tmp_path_factory.mktemp("feast_redis")
    config = feast_config(root, {"type": "redis", "connection_string": redis_url})
    config["sources"] = repo["config"]["sources"]  # the snapshot files already written
    store = fs.open_store(config)
    store.apply(list(fs.definitions(config).values()))
    return {"config": config, "store": store}


def test_materialization_node_fills_redis_and_reads_come_back(ray_session, redis_repo, snapshots):
    from payments_ml.feature_store import store as fs  # noqa: PLC0415
    from payments_ml.pipelines.features.nodes import _snapshot_table, materialize_online  # noqa: PLC0415

    customers = ray_session.data.from_arrow(_snapshot_table(snapshots["customer"]))
    report = materialize_online(redis_repo["config"], customers, snapshots["merchant"], applied={})
    latest = fs.latest_rows(snapshots["customer"], "customer_id")
    assert report["online_store"] == "redis"
    assert report["customer_snapshot"]["rows"] == len(latest)
    assert report["merchant_snapshot"]["rows"] == snapshots["merchant"]["merchant_id"].nunique()

    sample = latest.sample(40, random_state=3)
    online = fs.read_online(
        redis_repo["store"], "customer_snapshot", "customer_id", sample["customer_id"].to_numpy()
    )
    for column in ("tx_count_7d", "amount_sum_30d", "last_tx_ns"):
        np.testing.assert_allclose(online[column].to_numpy(float), sample[column].to_numpy(float))
    assert [list(v) for v in online["late_tx_ns"]] == [list(v) for v in sample["late_tx_ns"]]


def test_redis_rejects_bad_input_without_writing(redis_repo, snapshots):
    assert_bad_input_writes_nothing(redis_repo["store"], snapshots["merchant"])
