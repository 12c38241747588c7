"""A real redis-server on 127.0.0.1 for tests (installed with apt-get when missing)."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.system_packages import require


def start_redis(port: int) -> subprocess.Popen:
    """A redis-server without persistence on 127.0.0.1:port, answering PING."""
    import redis  # noqa: PLC0415

    server = subprocess.Popen(
        [
            require("redis-server"),  # installed by the session when missing
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
