"""Session-wide fixtures: one Ray cluster for the whole test session, small parameters."""

from __future__ import annotations

import copy
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Before Kedro is imported: it applies conf/logging.yml of the working folder at import.
# The quiet configuration (payments_ml's records on their own handlers, a log file in the
# repository's logs/) is for `kedro run`; this process logs every record into pytest's
# capture only (tests/logging.yml). Project subprocesses get the quiet one
# (tests.project.clean_env drops this).
os.environ.setdefault("KEDRO_LOGGING_CONFIG", str(PROJECT_ROOT / "tests" / "logging.yml"))

from payments_ml.config import load_parameters  # noqa: E402

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Serve as `make run` serves: HAProxy ingress and the throughput-optimized data plane.
os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
# Serve keeps draining replicas and proxies for at least 30 s at shutdown (time for a load
# balancer to notice): every Serve test module's teardown waited for it. Nothing balances
# load here.
os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
os.environ.setdefault("RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S", "1")
# As `make run` runs Ray (Makefile): token authentication on (the session's cluster
# creates ~/.ray/auth_token if missing; subprocesses inherit the mode), node address
# 127.0.0.1, Serve's HAProxy hardened by the project's wrapper.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault(
    "RAY_SERVE_HAPROXY_BINARY_PATH", str(Path(sys.executable).with_name("payments-ml-haproxy"))
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start installing missing Debian packages (redis-server, chromium) in the background;
    make sure a Ray token exists (what `make run` does before `ray start`)."""
    import subprocess  # noqa: PLC0415

    from tests.system_packages import start_installing  # noqa: PLC0415

    start_installing()
    subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "get-auth-token", "--generate"],
        check=True,
        capture_output=True,
    )
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray/auth_token"))
    if token.exists():
        token.chmod(0o600)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_session():
    """Start Ray once (2 CPUs, no dashboard) and share it across every test."""
    import ray  # noqa: PLC0415

    if not ray.is_initialized():
        # address="local": never join a cluster `make run` left running on this machine.
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            namespace="tests",
        )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def daily_history(tmp_path_factory, ray_session) -> Path:
    """A small world's 60-day history (tests/nights.py), once per session: the
    seven-night and the Airflow tests run their nights from copies of it."""
    from tests.nights import build_history  # noqa: PLC0415

    return build_history(tmp_path_factory.mktemp("daily_history"), ray_session)


@pytest.fixture(scope="session")
def daily_nights(tmp_path_factory, ray_session, daily_history) -> dict:
    """Seven `daily` nights after the history, once per session (tests/nights.py)."""
    from tests.nights import build_nights  # noqa: PLC0415

    return build_nights(daily_history, tmp_path_factory.mktemp("daily_nights"), ray_session)


@pytest.fixture(scope="session")
def base_params() -> dict[str, Any]:
    """The project's data_gen parameters as shipped in conf/base."""
    return load_parameters(PROJECT_ROOT)["data_gen"]


@pytest.fixture
def small_params(base_params: dict[str, Any]) -> dict[str, Any]:
    """A small world: 600 customers, 150 merchants, 6 days."""
    params = copy.deepcopy(base_params)
    params.update(n_customers=600, n_merchants=150, n_regions=6, n_days=6, start_date="2025-06-08")
    return params


@pytest.fixture(scope="session")
def generated_transactions(base_params) -> Any:
    """18 days of a small generated world (about 11 k valid transactions)."""
    import datetime as dt  # noqa: PLC0415

    from payments_ml.contracts import split_by_contract  # noqa: PLC0415
    from payments_ml.data_gen import generator as g  # noqa: PLC0415

    params = copy.deepcopy(base_params) | {"n_customers": 500, "n_merchants": 100, "n_regions": 5}
    valid, _ = split_by_contract(g.generate_days(g.world_of(params), dt.date(2025, 5, 1), 18))
    return valid


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory, ray_session) -> Path:
    """A scratch project after `kedro run` of data_gen, features and training (once per
    session, on the session's Ray cluster): the CLI, serving and notebook tests share it."""
    from tests.project import TRAIN_SMALL, kedro, scratch_project  # noqa: PLC0415

    project = scratch_project(tmp_path_factory.mktemp("full"))
    address = ray_session.get_runtime_context().gcs_address
    run = kedro(
        project,
        "--pipelines",
        "data_gen,features,training",
        "--params",
        TRAIN_SMALL,
        env={"RAY_ADDRESS": address},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return project
