"""The project's UIs: `kedro viz build` shows every pipeline; the Feast UI serves the registry."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.project import clean_env, scratch_project

pytestmark = pytest.mark.slow

KEDRO = Path(sys.executable).with_name("kedro")


def test_kedro_viz_build_shows_every_registered_pipeline(tmp_path):
    project = scratch_project(tmp_path)
    # The registry as `kedro run` sees it, in a fresh process (another test's in-process
    # Kedro session must not decide what this one finds).
    listing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from pathlib import Path;"
            "from kedro.framework.startup import bootstrap_project;"
            "from kedro.framework.project import pipelines;"
            "bootstrap_project(Path.cwd());"
            "print(json.dumps({k: sorted(n.name for n in p.nodes) for k, p in pipelines.items()}))",
        ],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    registered = json.loads(listing.stdout.strip().splitlines()[-1])
    assert {"data_gen", "features", "training", "serving", "ingest", "monitoring"} <= set(
        registered
    )

    build = subprocess.run(
        [str(KEDRO), "viz", "build"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    api = project / "build" / "api"
    assert (project / "build" / "index.html").exists()
    main = json.loads((api / "main").read_text())
    assert {p["id"] for p in main["pipelines"]} == set(registered)
    for name, nodes in registered.items():
        view = json.loads((api / "pipelines" / name).read_text())
        tasks = sorted(n["name"] for n in view["nodes"] if n["type"] == "task")
        assert tasks == nodes, f"pipeline {name}: Kedro-Viz shows {tasks}, Kedro runs {nodes}"


def test_feast_ui_asks_for_the_registry_first(tmp_path):
    from payments_ml.feature_store.__main__ import main  # noqa: PLC0415

    project = scratch_project(tmp_path)
    with pytest.raises(SystemExit, match=r"no Feast registry at .*kedro run --pipelines features"):
        main(["ui", "--project-path", str(project), "--port", str(free_port())])


def test_feast_ui_serves_the_projects_registry_on_localhost(tmp_path):
    """`python -m payments_ml.feature_store ui` over a registry the features pipeline applied."""
    import psutil  # noqa: PLC0415 (a Ray dependency)

    from payments_ml.config import project_settings  # noqa: PLC0415
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    project = scratch_project(tmp_path)
    feast = project_settings(str(project))["feast"]
    fs.open_store(feast).apply(list(fs.definitions(feast).values()))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "feast_ui.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "payments_ml.feature_store", "ui", "--port", str(port)],
            cwd=project,
            env=clean_env(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        projects = _wait_for(f"{url}/projects-list.json", server, log, timeout_s=120)
        assert [p["id"] for p in projects["projects"]] == ["payments_ml"]
        views = requests.get(f"{url}/api/v1/feature_views?project=payments_ml", timeout=10)
        assert {v["spec"]["name"] for v in views.json()["featureViews"]} == {
            "customer_snapshot",
            "merchant_snapshot",
            "customer_today",
        }
        services = requests.get(f"{url}/api/v1/feature_services?project=payments_ml", timeout=10)
        assert [s["spec"]["name"] for s in services.json()["featureServices"]] == ["fraud_model_v1"]
        assert requests.get(url, timeout=10).headers["content-type"].startswith("text/html")
        listening = [
            c.laddr
            for c in psutil.Process(server.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        ]
        assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", port)]
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(20)


def _wait_for(url: str, server: subprocess.Popen, log: Path, timeout_s: float) -> dict:
    """The JSON at ``url`` once the server answers; fails with its log if it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the Feast UI exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.ConnectionError):
            answer = requests.get(url, timeout=5)
            if answer.ok:
                return answer.json()
        time.sleep(0.5)
    pytest.fail(f"the Feast UI did not answer at {url} within {timeout_s} s")
