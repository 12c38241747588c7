"""Real servers for the cluster tests: Ray nodes (`ray start`) and an MLflow tracking server.

Everything started here runs in its own process group (session) and is stopped by
killing that group, never with `ray stop` (which would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # a Ray dependency

from tests.conftest import free_port

BIN = Path(sys.executable).parent

# `ray start` and its clients: token authentication (the token in ~/.ray/auth_token, made
# at the start of the session), no usage reporting, and a node address other nodes may
# join (unlike the embedded default's loopback-only cluster).
RAY_ENV = {
    "RAY_AUTH_MODE": "token",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
}


@dataclass(frozen=True)
class RayNode:
    """One `ray start --block` process and what its clients need."""

    process: subprocess.Popen
    temp_dir: Path
    address: str  # GCS address of the cluster (host:port)
    dashboard_url: str | None  # head only


def _port_args(*names: str) -> list[str]:
    return [arg for name in names for arg in (f"--{name}", str(free_port()))]


# Ports every node opens; free ones, so that several nodes (and other people's clusters)
# share this machine. Workers bind to ports the OS picks (min = max = 0).
_NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "metrics-export-port",
    "runtime-env-agent-port",
)


def start_ray_node(temp_dir: Path, num_cpus: int, head: RayNode | None = None) -> RayNode:
    """Start a Ray head (``head=None``) or a node that joins ``head``'s cluster.

    Args:
        temp_dir: Ray's temp dir for this node; short (Unix socket paths are limited).
        num_cpus: CPUs the node offers.
        head: The head to join, for a worker node.
    """
    temp_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(BIN / "ray"),
        "start",
        "--block",
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        str(num_cpus),
        "--object-store-memory",
        str(200 * 1024**2),
        "--temp-dir",
        str(temp_dir),
        "--min-worker-port",
        "0",
        "--max-worker-port",
        "0",
        "--disable-usage-stats",
        *_port_args(*_NODE_PORTS),
    ]
    dashboard_url = None
    if head is None:
        gcs_port, dashboard_port = free_port(), free_port()
        address = f"127.0.0.1:{gcs_port}"
        dashboard_url = f"http://127.0.0.1:{dashboard_port}"
        args += [
            "--head",
            "--port",
            str(gcs_port),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard_port),
            *_port_args("ray-client-server-port"),
        ]
    else:
        address = head.address
        args += ["--address", address]
    env = os.environ | RAY_ENV
    env.pop("RAY_ADDRESS", None)
    log = (temp_dir / "ray_start.log").open("wb")
    process = subprocess.Popen(
        args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return RayNode(process, temp_dir, address, dashboard_url)


def start_ray_head(temp_dir: Path, num_cpus: int, attempts: int = 2) -> RayNode:
    """A Ray head that is up, with one more try when `ray start` times out.

    On 2 busy cores, `ray start` sometimes gives up waiting for its raylet to register
    with the GCS (30 s, fixed in Ray); a second start on fresh ports then succeeds.
    """
    for attempt in range(1, attempts + 1):
        head = start_ray_node(temp_dir / f"head-{attempt}", num_cpus)
        try:
            wait_for_nodes(head, 1)
            return head
        except AssertionError:
            start_failed = head.process.poll() is not None  # `ray start` gave up
            stop_ray_nodes(head)  # and what it left running (GCS, raylet)
            if not start_failed or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def wait_for_nodes(head: RayNode, count: int, timeout: float = 120) -> list[Any]:
    """Wait until the cluster has ``count`` alive nodes; returns them (state API)."""
    from ray.util.state import list_nodes  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        if head.process.poll() is not None:
            break
        try:
            nodes = [
                n for n in list_nodes(address=head.dashboard_url, timeout=5) if n.state == "ALIVE"
            ]
            if len(nodes) >= count:
                return nodes
        except Exception as err:  # the dashboard is still starting
            error = err
        time.sleep(1)
    log = (head.temp_dir / "ray_start.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"Ray cluster at {head.address} has not {count} nodes: {error}\n{log}")


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGKILL the process's group and reap it: test servers keep nothing worth saving."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout)


def stop_ray_nodes(*nodes: RayNode) -> None:
    """Stop the nodes and any Ray process still using their temp dirs (workers)."""
    for node in nodes:
        stop_process_group(node.process)
    kill_processes_mentioning(*(str(node.temp_dir) for node in nodes))


def kill_processes_mentioning(*texts: str) -> list[int]:
    """SIGKILL processes whose command line mentions one of ``texts`` (leftovers)."""
    killed = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if proc.pid != os.getpid() and any(text in cmdline for text in texts):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
                killed.append(proc.pid)
    return killed


@dataclass(frozen=True)
class MlflowServer:
    """An `mlflow server` process and its tracking URI."""

    process: subprocess.Popen
    uri: str
    root: Path


def start_mlflow_server(root: Path) -> MlflowServer:
    """Start an MLflow tracking server on 127.0.0.1: SQLite store, artifacts proxied to root.

    Returns at once; :func:`wait_for_mlflow` waits until it answers.
    """
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (root / "mlflow_server.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # No job runner (7 huey worker processes): tracking and registry are all we need.
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    log.close()
    return MlflowServer(process, f"http://127.0.0.1:{port}", root)


def wait_for_mlflow(server: MlflowServer, timeout: float = 180) -> None:
    """Wait until the server's /health answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{server.uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if server.process.poll() is not None or time.monotonic() > deadline:
            text = (server.root / "mlflow_server.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"mlflow server did not answer on {server.uri}/health:\n{text}")
        time.sleep(0.5)
