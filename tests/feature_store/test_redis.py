"""The Redis online store (the cluster environment's) against a real redis-server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import free_port
from tests.feature_store.conftest import assert_bad_input_writes_nothing, feast_config
from tests.feature_store.redis_server import start_redis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_url():
    port = free_port()
    server = start_redis(port)
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
    from payments_ml.pipelines.features.nodes import materialize_online, snapshot_table  # noqa: PLC0415

    customers = ray_session.data.from_arrow(snapshot_table(snapshots["customer"]))
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


def test_customer_today_appends_are_atomic_on_redis(redis_repo):
    from payments_ml.feature_store import store as fs  # noqa: PLC0415
    from tests.feature_store.test_today import assert_appends_are_exact  # noqa: PLC0415

    assert_appends_are_exact(redis_repo["store"], fs.open_store(redis_repo["config"]))


def test_review_state_changes_with_its_audit_and_survives_a_new_connection(redis_repo):
    """Cluster blocks and verdicts: one atomic change with its audit entries, read back by
    another backend (another replica, or the same one restarted)."""
    import uuid  # noqa: PLC0415

    from payments_ml.feature_store.backends import open_backend  # noqa: PLC0415

    key, other = f"card:{uuid.uuid4().int % 10**9}", "card:-1"  # the server is the module's
    state = open_backend(redis_repo["store"], 1.0).review()

    def block(current):
        assert current == {}
        after = {"blocked": True, "analyst": "ana"}
        return {key: after}, [{"action": "block", "key": key, "after": after}]

    after_block = {"blocked": True, "analyst": "ana"}
    assert state.update([key], block)[0] == {key: after_block}
    again = open_backend(redis_repo["store"], 1.0).review()
    assert again.get([key, other]) == {key: {"blocked": True, "analyst": "ana"}}
    assert again.update([key], lambda current: ({}, []))[0] == {}
    assert again.audit(1) == [{"action": "block", "key": key, "after": after_block}]
