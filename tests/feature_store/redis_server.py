"""A real redis-server on 127.0.0.1 for tests (installed with apt-get when missing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.conftest import free_port

__all__ = ["free_port", "redis_server_binary", "start_redis"]


def redis_server_binary() -> str:
    """redis-server's path; installs the Debian package when missing, else skips."""
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


def start_redis(port: int) -> subprocess.Popen:
    """A redis-server without persistence on 127.0.0.1:port, answering PING."""
    import redis  # noqa: PLC0415

    server = subprocess.Popen(
        [
            redis_server_binary(),
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
            return server
        except redis.ConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"redis-server did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
