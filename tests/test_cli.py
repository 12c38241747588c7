"""The real `kedro run` CLI in a scratch copy of the project: the hook, the catalog, --params."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests.conftest import free_port
from tests.project import SMALL, kedro, scratch_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return scratch_project(tmp_path_factory.mktemp("project"))


def _partition(project: Path, day: str) -> pd.DataFrame:
    path = project / "data/01_raw/transactions" / f"event_date={day}"
    return pd.read_parquet(path).sort_values("transaction_id", ignore_index=True)


def test_data_gen_runs_then_one_day_is_regenerated_identically(project, ray_session):
    full = kedro(project, "--pipelines", "data_gen", "--params", SMALL)
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-3000:]
    log = full.stdout + full.stderr
    assert "Ray started locally" in log and "Ray session closed" in log
    # The quiet console: a line per node with its time, no library noise; the full detail
    # (Kedro's loads and saves, Ray Data's progress) in the run's log file, named at the end.
    assert "[4/4] generate_transactions_node" in log and "full log: " in log
    for noise in ("Loading data from", "register_new_resolver", "Add type hints", "will hang"):
        assert noise not in log, noise
    detail = (project / "logs" / "payments-ml.log").read_text()
    assert "Loading data from params:data_gen" in detail and "Wrote " in detail
    summary = json.loads((project / "data/08_reporting/data_gen_summary.json").read_text())
    assert summary["days"] == 4 and summary["quarantined"] > 0
    for name in ("customers", "cards", "merchants"):
        assert (project / f"data/01_raw/{name}.parquet").exists()
    before = _partition(project, "2025-06-11")

    address = ray_session.get_runtime_context().gcs_address  # joining a running cluster
    one = kedro(
        project,
        "--pipelines",
        "data_gen",
        "--params",
        SMALL + ",data_gen.run_date=2025-06-11",
        env={"RAY_ADDRESS": address},
    )
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    assert f"joined at {address}" in one.stdout + one.stderr
    pd.testing.assert_frame_equal(_partition(project, "2025-06-11"), before)
    assert len(list((project / "data/01_raw/transactions").glob("event_date=*"))) == 4
    assert (
        json.loads((project / "data/08_reporting/data_gen_summary.json").read_text())["days"] == 1
    )


def test_a_failing_node_still_closes_ray_and_says_why(project, ray_session):
    # Joining the session's cluster: the hook closes what it opened either way (a local
    # start is closed by the data_gen test above).
    address = ray_session.get_runtime_context().gcs_address
    # A value the parameter schema leaves to the generator's own draws: its Ray task fails.
    failed = kedro(
        project,
        "--pipelines",
        "data_gen",
        "--params",
        SMALL + ",data_gen.n_days=1,data_gen.seasonality.amount_sigma=-1",
        env={"RAY_ADDRESS": address},
    )
    log = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "ValueError: scale < 0" in log and "partition: event_date=2025-06-09" in log
    assert "Ray session closed" in log


def test_a_parameter_out_of_range_stops_the_run_before_anything_is_written(tmp_path):
    """One line naming key, value and range; no node ran, nothing was written (not even
    MLflow's store), no Ray session was opened."""
    fresh = scratch_project(tmp_path / "fresh")
    run = kedro(fresh, "--pipelines", "data_gen", "--params", "data_gen.n_days=-3")
    assert run.returncode == 1
    said = [line for line in (run.stdout + run.stderr).splitlines() if "n_days" in line]
    assert said == [
        "Error: Invalid parameters (conf/<env>/parameters_*.yml or --params): "
        "data_gen.n_days = -3: must be >= 1. Nothing was run."
    ]
    assert "Traceback" not in run.stdout + run.stderr and "Ray" not in run.stdout
    assert not (fresh / "data").exists() or not any(
        p.is_file() for p in (fresh / "data").rglob("*")
    )


def test_kedro_run_trains_tracks_and_registers_in_mlflow(trained_project):
    """One MLflow run with nested trials, metrics, plots and a registered champion."""
    import mlflow  # noqa: PLC0415

    project = trained_project
    uri = f"sqlite:///{project / 'data/mlflow/mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("payments-ml")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3  # the kedro run and its two trials
    parent = parents[0]
    for metric in ("test_average_precision", "test_roc_auc", "test_card_precision_at_20"):
        assert metric in parent.data.metrics and f"baseline_{metric[5:]}" in parent.data.metrics
    assert parent.data.params["training.num_samples"] == "2"
    assert parent.info.run_name.startswith("data_gen+features+training 20")  # + today's date
    assert parent.data.tags["runner"] == "SequentialRunner"
    assert {"git_commit", "data_window", "promotion"} <= set(parent.data.tags)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert artifacts == {
        f"plots/{name}.png"
        for name in ("pr_curve", "feature_importance", "calibration", "score_distribution")
    }
    assert str(client.get_model_version_by_alias("fraud_model", "champion").version) == "1"
    assert (project / "data/08_reporting/plots/pr_curve.png").stat().st_size > 10_000


def test_serving_pipeline_leaves_a_scorer_that_replays_a_day_consistently(trained_project):
    """`ray start` head, `kedro run --pipelines serving`, then the replay CLI with --check."""
    ports = [free_port() for _ in range(7)]
    haproxies_before = _haproxy_pids()
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}  # token auth, as `make run`
    env.pop("RAY_ADDRESS", None)
    ray_bin = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(ports[0]),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(ports[1]),
            "--dashboard-agent-listen-port",
            str(ports[2]),
            "--dashboard-agent-grpc-port",
            str(ports[3]),
            "--metrics-export-port",
            str(ports[4]),
            "--runtime-env-agent-port",
            str(ports[5]),
            "--num-cpus",
            "2",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        address = f"127.0.0.1:{ports[0]}"
        serve_port = ports[6]
        run = kedro(
            trained_project,
            "--pipelines",
            "serving",
            "--params",
            f"serving.port={serve_port},serving.replica_cpus=0.5",
            env={"RAY_ADDRESS": address},
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        deployment = json.loads(
            (trained_project / "data/08_reporting/serving_deployment.json").read_text()
        )
        assert deployment["status"] == "ok" and deployment["model_version"] == "1"
        assert deployment["num_replicas"] == 2  # `auto` on 2 CPUs
        # Closed to the network: every port of the head, its workers, the replicas and
        # HAProxy is on loopback, and Ray's job API wants the token.
        ours = {head.pid} | _haproxy_pids() - haproxies_before
        ours |= {p.pid for p in _descendants(head.pid)}
        assert _open_listeners(ours) == []
        jobs = f"http://127.0.0.1:{ports[1]}/api/jobs/"
        assert requests.get(jobs, timeout=10).status_code == 401
        token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray/auth_token"))
        authorized = {"Authorization": f"Bearer {token.read_text().strip()}"}
        assert requests.get(jobs, headers=authorized, timeout=10).status_code == 200
        replay = subprocess.run(
            [
                sys.executable,
                "-m",
                "payments_ml.stream",
                "--day",
                "2025-05-27",
                "--rate",
                "200",
                "--limit",
                "300",
                "--check",
                "--url",
                f"http://127.0.0.1:{serve_port}",
            ],
            check=False,
            cwd=trained_project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
        summary = json.loads(replay.stdout[replay.stdout.index("{") :])
        assert summary["sent"] == summary["ok"] == 300
        assert summary["consistency"]["compared"] == 300
        assert summary["consistency"]["rows_with_mismatch"] == 0, summary["consistency"]
    finally:
        # SIGKILL: on SIGTERM `ray start --block` drains for up to 30 s; this head and its
        # processes (one process group) hold nothing worth a graceful stop.
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(20)
        # Serve's HAProxy runs in its own session and outlives a killed head (`ray stop`
        # stops it, but would stop the test session's cluster too).
        for pid in _haproxy_pids() - haproxies_before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _descendants(pid: int) -> list:
    import psutil  # noqa: PLC0415 (a Ray dependency)

    return psutil.Process(pid).children(recursive=True)


def _open_listeners(pids: set[int]) -> list[str]:
    """Listening sockets of these processes that are not on loopback."""
    import psutil  # noqa: PLC0415

    loopback = ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    return [
        f"{c.laddr.ip}:{c.laddr.port} (pid {c.pid})"
        for c in psutil.net_connections(kind="inet")
        if c.pid in pids
        and c.status in (psutil.CONN_LISTEN, psutil.CONN_NONE)
        and c.laddr
        and c.laddr.ip not in loopback
    ]


def _haproxy_pids() -> set[int]:
    import psutil  # noqa: PLC0415 (a Ray dependency)

    return {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "haproxy"}


def test_an_unknown_pipeline_is_one_line_naming_the_pipelines(project):
    """Kedro's own error is a 200-line ImportError traceback; ours names the real ones."""
    run = kedro(project, "--pipelines", "nonexist")
    assert run.returncode != 0
    said = [line for line in (run.stdout + run.stderr).splitlines() if "nonexist" in line]
    assert said == [
        "Error: There is no pipeline 'nonexist'. Pipelines: daily, daily_ingest, data_gen, "
        "features, ingest, labels, monitoring, serving, training."
    ]
    assert "Traceback" not in run.stdout + run.stderr
