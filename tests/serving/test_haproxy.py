"""payments-ml-haproxy: Ray's rendered HAProxy configuration, hardened (no Ray needed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from payments_ml.serving.haproxy import harden, real_binary

RENDERED = (Path(__file__).parent / "data/haproxy_ray_2_60.cfg").read_text()


@pytest.fixture
def hardened(tmp_path) -> str:
    return harden(RENDERED.replace("D/", f"{tmp_path}/"), tmp_path)


def test_every_listener_binds_loopback_and_the_admin_socket_is_private(hardened):
    assert re.findall(r"^\s*bind (\S+)", hardened, flags=re.M) == [
        "127.0.0.1:9101",
        "127.0.0.1:8000",
        "127.0.0.1:8404",
    ]
    assert "mode 600 level admin" in hardened and "mode 666" not in hardened
    assert "127.0.0.1:514" not in hardened and "access-log.sock local0 info" in hardened


def test_slow_clients_dead_replicas_and_no_replica_fail_fast(hardened, tmp_path):
    assert "timeout http-request 10s" in hardened and "timeout connect 100ms" in hardened
    assert "retries 3" in hardened and "error-limit 1 on-error mark-down" in hardened
    assert "retry-on conn-failure empty-response" in hardened  # a replica died mid-request
    assert "SERVE_PROXY_ACTOR-fallback" not in hardened  # no replica: answer, do not wait
    unavailable = (tmp_path / "payments-ml-503.http").read_bytes()
    assert unavailable.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 1\r\n" in unavailable
    head, body = unavailable.split(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert f"errorfile 502 {tmp_path}/payments-ml-503.http" in hardened


def test_hardening_is_idempotent_and_haproxy_accepts_it(hardened, tmp_path):
    assert harden(hardened, tmp_path) == hardened
    config = tmp_path / "haproxy.cfg"
    config.write_text(hardened)
    check = subprocess.run(
        [real_binary(), "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_an_unrecognised_configuration_is_refused(tmp_path):
    """A Ray upgrade that renders what the edits do not recognise: HAProxy must not start."""
    rendered = RENDERED.replace("D/", f"{tmp_path}/")
    moved = rendered.replace("bind *:8404", "bind 10.0.0.1:8404")
    with pytest.raises(ValueError, match=r"could not harden.*a listener binds 10\.0\.0\.1:8404"):
        harden(moved, tmp_path)
    reordered = rendered.replace("mode 666 level admin", "level admin mode 666")
    with pytest.raises(ValueError, match="the admin socket is not mode 600"):
        harden(reordered, tmp_path)
