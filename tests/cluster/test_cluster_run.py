"""`kedro run --env cluster` on a real two-node Ray cluster, MLflow server and Redis.

One module-scoped run (data_gen, features and a two-trial tuning) serves every check:
tasks on both nodes (Ray's state API), runs and model in the MLflow server, online
features in Redis, data under PAYMENTS_ML_DATA_ROOT, and JSON-lines logs.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.cluster.servers import (
    RAY_ENV,
    MlflowServer,
    kill_processes_mentioning,
    start_mlflow_server,
    start_ray_head,
    start_ray_node,
    stop_process_group,
    stop_ray_nodes,
    wait_for_mlflow,
    wait_for_nodes,
)
from tests.conftest import free_port
from tests.feature_store.redis_server import start_redis
from tests.project import kedro, scratch_project

pytestmark = pytest.mark.slow

# 16 days of 800 customers (about 14 k transactions): a 2-day label delay leaves
# 8 training days (3 of them validation), a 2-day gap and 4 test days.
PARAMS = (
    "data_gen.n_customers=800,data_gen.n_merchants=120,data_gen.n_regions=5,"
    "data_gen.n_days=16,data_gen.start_date=2025-05-01,label_delay_days=2,"
    "training.train_days=8,training.valid_days=3,training.test_days=4,"
    "training.num_samples=2,training.num_boost_round=20,training.report_every=5,"
    "training.card_precision_k=20"
)
DAYS = "event_date=2025-05-01..2025-05-16"


@dataclass(frozen=True)
class ClusterRun:
    """The servers, the finished `kedro run` and where it wrote."""

    dashboard_url: str
    node_ids: set[str]
    mlflow: MlflowServer
    redis_url: str
    data_root: Path
    project: Path
    stderr: str


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory) -> ClusterRun:
    """Head + one worker node (1 CPU each), MLflow server, Redis; one `kedro run`."""
    tmp = tmp_path_factory.mktemp("cluster")
    # Ray's Unix sockets live under its temp dir: keep that path short.
    ray_tmp = Path(tempfile.mkdtemp(prefix="pml-ray-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, ray_tmp, ignore_errors=True)
        # The head first, alone: its start is what suffers from a busy machine.
        head = start_ray_head(ray_tmp, num_cpus=1)
        nodes = [head]
        stack.callback(lambda: stop_ray_nodes(*nodes))
        mlflow = start_mlflow_server(tmp / "mlflow")
        stack.callback(stop_process_group, mlflow.process)
        redis_port = free_port()
        redis = start_redis(redis_port)
        stack.callback(lambda: (redis.kill(), redis.wait(10)))
        nodes.append(start_ray_node(ray_tmp / "worker", num_cpus=1, head=head))
        alive = wait_for_nodes(head, 2)
        wait_for_mlflow(mlflow)

        project = scratch_project(tmp / "project")
        data_root = tmp / "shared"  # a mount every node sees
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        run = kedro(
            project,
            "--env",
            "cluster",
            "--pipelines",
            "data_gen,features,training",
            "--params",
            PARAMS,
            env=RAY_ENV
            | {
                "RAY_ADDRESS": head.address,
                "MLFLOW_TRACKING_URI": mlflow.uri,
                "REDIS_URL": redis_url,
                "PAYMENTS_ML_DATA_ROOT": str(data_root),
            },
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
        yield ClusterRun(
            dashboard_url=head.dashboard_url,
            node_ids={n.node_id for n in alive},
            mlflow=mlflow,
            redis_url=redis_url,
            data_root=data_root,
            project=project,
            stderr=run.stderr,
        )
    # Nothing of the cluster may outlive the module (workers included).
    assert kill_processes_mentioning(str(ray_tmp)) == []


def test_tasks_ran_on_both_nodes(cluster_run):
    """Ray's state API: data_gen's tasks (runs of days), the features stage's partition
    tasks and the Tune trials each used both the head and the worker."""
    from ray.util.state import list_tasks  # noqa: PLC0415

    tasks = list_tasks(
        address=cluster_run.dashboard_url,
        filters=[("state", "=", "FINISHED")],
        detail=True,
        limit=10_000,
        raise_on_missing_output=False,
    )
    nodes_by_task, per_node = defaultdict(set), defaultdict(lambda: defaultdict(int))
    for task in tasks:
        nodes_by_task[task.name].add(task.node_id)
        per_node[task.name][(task.node_id or "none")[:8]] += 1
    # The features stage (docs/design.md, "Features"): the read-and-split tasks, the
    # partitions' concatenation and feature rows, the merchant days, the writes.
    features = {"read_by_customer", "concat_customer_partition", "training_rows"}
    features |= {"merchant_daily", "write_parquet_block"}
    feature_nodes = set().union(*(nodes_by_task[name] for name in features))
    summary = {name: dict(per_node[name]) for name in sorted(features | {"generate_days"})}
    print(f"\ntasks per node: {json.dumps(summary)}")  # noqa: T201 (the closing note's figure)
    assert len(cluster_run.node_ids) == 2
    for name in ("generate_days", "read_by_customer", "training_rows"):
        assert nodes_by_task[name] == cluster_run.node_ids, summary
    assert feature_nodes == cluster_run.node_ids, summary
    # Two 1-CPU trials at once on two 1-CPU nodes: one trial per node.
    trial_nodes = set().union(*(n for name, n in nodes_by_task.items() if name.endswith(".train")))
    assert trial_nodes == cluster_run.node_ids, summary


def test_mlflow_server_holds_the_runs_and_the_champion(cluster_run):
    """One parent run with nested trials, artifacts stored by the server, a registered model."""
    import mlflow  # noqa: PLC0415

    client = mlflow.MlflowClient(
        tracking_uri=cluster_run.mlflow.uri, registry_uri=cluster_run.mlflow.uri
    )
    experiment = client.get_experiment_by_name("payments-ml")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # the server's store
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3, [r.info.run_name for r in runs]
    parent = parents[0]
    assert {r.data.tags["mlflow.parentRunId"] for r in runs if r is not parent} == {
        parent.info.run_id
    }
    assert {"test_average_precision", "baseline_average_precision"} <= set(parent.data.metrics)
    assert parent.data.params["training.num_samples"] == "2"
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/pr_curve.png" in plots
    assert list((cluster_run.mlflow.root / "artifacts").rglob("pr_curve.png"))
    champion = client.get_model_version_by_alias("fraud_model", "champion")
    assert str(champion.version) == "1"


def test_online_features_are_served_from_redis(cluster_run):
    """Feast reads each merchant's latest snapshot back from Redis."""
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    root = cluster_run.data_root
    config = {
        "project": "payments_ml",
        "registry": str(root / "feast/registry.db"),
        "offline_store": {"type": "file"},
        "online_store": {"type": "redis", "connection_string": cluster_run.redis_url},
        "sources": {},
    }
    snapshots = pd.read_parquet(root / "04_feature/merchant_snapshots")
    expected = fs.latest_rows(snapshots, "merchant_id").set_index("merchant_id")
    ids = expected.index.to_numpy()[:20]
    online = fs.read_online(fs.open_store(config), "merchant_snapshot", "merchant_id", ids)
    online = online.set_index("merchant_id")
    for column in ("merchant_tx_count_7d", "merchant_fraud_rate_30d"):
        pd.testing.assert_series_equal(
            online[column], expected.loc[ids, column], check_dtype=False, check_names=False
        )
    report = json.loads((root / "08_reporting/online_materialization.json").read_text())
    assert report["online_store"] == "redis"
    assert report["customer_snapshot"]["rows"] > 700


def test_data_lives_under_the_configured_root(cluster_run):
    """PAYMENTS_ML_DATA_ROOT moves every dataset, Feast's registry and Tune's results."""
    root = cluster_run.data_root
    days = sorted(p.name for p in (root / "01_raw/transactions").glob("event_date=*"))
    assert len(days) == 16 and days[0] == "event_date=2025-05-01"
    for path in (
        "01_raw/customers.parquet",
        "05_model_input/training_set",
        "04_feature/customer_snapshots",
        "feast/registry.db",
        "08_reporting/evaluation.json",
        "06_models/best_hyperparameters.json",
    ):
        assert (root / path).exists(), path
    assert [p.name for p in (root / "06_models/tune").iterdir()]  # the Tune experiment
    data = cluster_run.project / "data"
    assert not data.exists() or not [p for p in data.rglob("*") if p.is_file()]


# Lines on stderr that are not log records of a configured logger: ray.init's connection
# messages (printed before the configuration can be re-applied), Optuna's own handler (set
# up when Tune imports it inside the node), MLflow's registry prints and download bars.
_NOT_LOGS = re.compile(
    r"INFO worker\.py:\d+ -- Connect(ing|ed) to (existing )?Ray cluster"
    r"|^\[[IW] \d{4}-\d\d-\d\d [\d:,]+\] "
    r"|^Successfully registered model 'fraud_model'|^Created version '\d+' of model 'fraud_model'"
    r"|^Downloading artifacts:"
)


def test_cluster_logs_are_json_lines_with_run_context(cluster_run):
    """Log records are JSON lines; those of a node name the pipeline, node and days."""
    lines = [line.strip() for line in cluster_run.stderr.splitlines() if line.strip()]
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    records = [json.loads(line) for line in lines[first:] if line.startswith("{")]
    text = [line for line in lines[first:] if not line.startswith("{")]
    assert [line for line in text if not _NOT_LOGS.search(line)] == []
    assert len(records) > 100 and {"time", "level", "logger", "message"} <= set(records[0])
    joined = next(r for r in records if r["message"].startswith("Ray joined"))
    assert "2 node(s)" in joined["message"]
    generating = next(r for r in records if r["message"].startswith("Generating 16 day(s)"))
    assert generating["pipeline"] == "data_gen,features,training"
    assert generating["node"] == "generate_transactions_node"
    assert generating["partition"] == DAYS
    assert any(r.get("node") == "tune_hyperparameters_node" for r in records)
    assert any(r["logger"].startswith("mlflow") for r in records)  # routed, not printed
