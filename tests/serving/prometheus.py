"""deploy/prometheus/prometheus.yml and deploy/grafana/ against a real Prometheus.

Checks that tests/serving/test_app.py runs against its scorer (one Serve replica, so
every scrape reads the one replica's counts). Prometheus (the Debian package) runs on
127.0.0.1 with the shipped configuration, its scorer job moved to that deployment (its
port and route prefix) and its interval cut to 1 s; it must read back the request
counter the scorer counted. Every query of the Grafana dashboard must name metrics the
scorer exposes (asked of Prometheus) or that Ray exports for it, and must evaluate: the
dashboard cannot drift from src/payments_ml/serving/metrics.py. The Ray row's names
were also read off a live Ray 2.60 node once (ray_scorer_*); here they are derived from
what metrics.py registers with Ray.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from payments_ml.config import load_parameters
from tests.conftest import PROJECT_ROOT, free_port
from tests.serving.load import request_body
from tests.system_packages import require

PROMETHEUS_YML = PROJECT_ROOT / "deploy/prometheus/prometheus.yml"
DASHBOARD = PROJECT_ROOT / "deploy/grafana/dashboards/payments-ml-scorer.json"
SCORER_JOB, RAY_JOB = "payments-ml-scorer", "ray"
WAIT_S = 20.0
# PromQL words that are not metric names (functions are told apart by their "(").
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


class Prometheus:
    """Prometheus on 127.0.0.1:<free port> with the shipped configuration, scraping the
    scorer at ``target`` (host:port) and ``metrics_path`` every second; its Ray job reads
    an empty discovery file.

    Its first scrape comes ~5 s after its start (target updates are sent every 5 s):
    :meth:`start_early` lets that wait overlap the scorer's deployment.
    """

    def __init__(self, folder: Path, target: str, metrics_path: str) -> None:
        self.folder, self.target, self.metrics_path = folder, target, metrics_path
        self.url = ""
        self.process: subprocess.Popen | None = None
        self.log = folder / "prometheus.log"

    def start_early(self) -> None:
        """Start now if Prometheus is installed and the shipped configuration has its jobs;
        otherwise :meth:`api` starts it, or says why it cannot, in the test that asks."""
        binary = shutil.which("prometheus")
        if binary:
            with contextlib.suppress(ValueError, OSError):
                self._start(binary)

    def api(self) -> str:
        """The URL of Prometheus's HTTP API, once it answers (started now if need be)."""
        if self.process is None:
            self._start(require("prometheus"))
        _wait(self._ready, "Prometheus to be ready", WAIT_S)
        return self.url

    def stop(self) -> None:
        """Terminate Prometheus (kill it if it has not exited 10 s later)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _start(self, binary: str) -> None:
        discovery = self.folder / "ray_discovery.json"
        discovery.write_text("[]")
        shipped = yaml.safe_load(PROMETHEUS_YML.read_text())
        config = self.folder / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(prometheus_config(shipped, self.target, self.metrics_path, discovery))
        )
        port = free_port()
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{port}"

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = self.log.read_text()[-3000:]
            pytest.fail(f"Prometheus exited with {self.process.returncode}:\n{log}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False


def prometheus_config(
    shipped: dict[str, Any], target: str, metrics_path: str, discovery: Path
) -> dict[str, Any]:
    """The shipped configuration with the scorer job aimed at ``target`` (host:port) and
    ``metrics_path``, the Ray job at ``discovery`` and every interval at 1 s."""
    config = copy.deepcopy(shipped)
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    jobs = _jobs(config)
    jobs[SCORER_JOB]["static_configs"] = [
        {**jobs[SCORER_JOB]["static_configs"][0], "targets": [target]}
    ]
    jobs[SCORER_JOB]["metrics_path"] = metrics_path
    jobs[RAY_JOB]["file_sd_configs"] = [{"files": [str(discovery)], "refresh_interval": "1s"}]
    return config


def check_shipped_configuration() -> None:
    """promtool accepts deploy/prometheus/prometheus.yml; it scrapes the serving port (at
    the root: `make run` deploys under route prefix "/") and Ray's discovery file."""
    from ray._private import ray_constants  # noqa: PLC0415

    promtool = Path(require("prometheus")).with_name("promtool")
    check = subprocess.run(
        [str(promtool), "check", "config", str(PROMETHEUS_YML)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    jobs = _jobs(yaml.safe_load(PROMETHEUS_YML.read_text()))
    serving = load_parameters(PROJECT_ROOT)["serving"]
    target = f"{serving['host']}:{serving['port']}"
    assert jobs[SCORER_JOB]["static_configs"][0]["targets"] == [target]
    assert jobs[SCORER_JOB].get("metrics_path", "/metrics") == "/metrics"
    [ray_file] = jobs[RAY_JOB]["file_sd_configs"][0]["files"]
    assert Path(ray_file).name == ray_constants.PROMETHEUS_SERVICE_DISCOVERY_FILE


def check_counter_read_back(prometheus: Prometheus, url: str, rows: pd.DataFrame) -> None:
    """Requests of known routes and statuses move the scorer's scorer_requests_total by
    as many, and Prometheus reads the same totals back. Nothing else may send scoring
    requests meanwhile (the tests run one after the other)."""
    before = _scorer_counts(url)
    for start in range(0, 12, 3):
        _score(url, rows.iloc[start : start + 3])
    one = requests.post(f"{url}/score", json=request_body(rows.iloc[12]), timeout=10)
    assert one.status_code == 200, one.text
    bad = [request_body(rows.iloc[0], amount=-1)]
    answer = requests.post(f"{url}/score/batch", json={"transactions": bad}, timeout=10)
    assert answer.status_code == 422, answer.text
    assert requests.get(f"{url}/health", timeout=10).status_code == 200
    sent = {
        ("/score/batch", "200"): 4,
        ("/score/batch", "422"): 1,
        ("/score", "200"): 1,
        ("/health", "200"): 1,
    }
    expected = {key: before.get(key, 0) + count for key, count in sent.items()}
    assert {key: _scorer_counts(url).get(key) for key in expected} == expected
    api = prometheus.api()

    def scraped() -> dict[tuple[str, str], float]:
        series = _query(api, f'scorer_requests_total{{job="{SCORER_JOB}"}}')
        return {(s["metric"]["route"], s["metric"]["status"]): float(s["value"][1]) for s in series}

    _wait(
        lambda: all(scraped().get(k) == v for k, v in expected.items()),
        f"Prometheus to read {expected}",
        WAIT_S,
        lambda: f"it reads {scraped()}",
    )


def check_dashboard_queries(
    prometheus: Prometheus, url: str, rows: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every query of the Grafana dashboard names metrics the scorer exposes (asked of
    Prometheus) or Ray exports for it, evaluates, and the scorer's return data."""
    dashboard = json.loads(DASHBOARD.read_text())
    _check_layout(dashboard)
    queries = _queries(dashboard)
    ray = [q for q in queries if any(n.startswith("ray_") for n in _metric_names(q))]
    own = [q for q in queries if q not in ray]
    assert own and ray, "the dashboard has a row for the scorer's /metrics and one for Ray's"
    _score(url, rows.iloc[20:22])
    api = prometheus.api()

    def missing() -> set[str]:
        names = set(_get(api, "label/__name__/values", {"match[]": f'{{job="{SCORER_JOB}"}}'}))
        return {n for q in own for n in _metric_names(q)} - names

    _wait(
        lambda: not missing(),
        "the scorer's metrics in Prometheus",
        WAIT_S,
        lambda: f"the dashboard names metrics the scorer does not expose: {sorted(missing())}",
    )
    unknown = {n for q in ray for n in _metric_names(q)} - _ray_exported_names(monkeypatch)
    assert not unknown, f"the dashboard names metrics Ray does not export for the scorer: {unknown}"
    # Each query evaluates; the scorer's return data once two scrapes followed traffic.
    for query in ray:
        _query(api, query)
    _wait(
        lambda: not _empty(api, own),
        "every scorer panel to have data",
        WAIT_S,
        lambda: f"no data for: {_empty(api, own)}",
    )


def _jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    for name in (SCORER_JOB, RAY_JOB):
        if name not in jobs:
            raise ValueError(f"{PROMETHEUS_YML} has no scrape job {name!r} (jobs: {sorted(jobs)})")
    return jobs


def _wait(
    done: Callable[[], bool], what: str, timeout_s: float, why: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout_s:g} s for {what}; {why()}".rstrip("; "))
        time.sleep(0.2)


def _get(api: str, path: str, params: dict[str, str]) -> Any:
    answer = requests.get(f"{api}/api/v1/{path}", params=params, timeout=5)
    body = answer.json()
    if body.get("status") != "success":
        pytest.fail(f"Prometheus refused {params}: {body.get('error', answer.text)}")
    return body["data"]


def _query(api: str, query: str) -> list[dict[str, Any]]:
    """The instant vector of ``query`` (Grafana's $__rate_interval read as 30s)."""
    return _get(api, "query", {"query": query.replace("$__rate_interval", "30s")})["result"]


def _empty(api: str, queries: list[str]) -> list[str]:
    return [q for q in queries if not _query(api, q)]


def _score(url: str, rows: pd.DataFrame) -> None:
    """POST ``rows`` to /score/batch."""
    body = {"transactions": [request_body(row) for _, row in rows.iterrows()]}
    answer = requests.post(f"{url}/score/batch", json=body, timeout=10)
    assert answer.status_code == 200, answer.text


def _scorer_counts(url: str) -> dict[tuple[str, str], float]:
    """scorer_requests_total by (route, status), as the scorer's /metrics reads now."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        (s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "scorer_requests"
        for s in family.samples
        if s.name == "scorer_requests_total"
    }


def _queries(dashboard: dict[str, Any]) -> list[str]:
    """Every panel's PromQL (rows' folded panels included)."""
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            found += [t["expr"] for t in inner.get("targets", [])]
    return found


def _metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label
    matchers, ranges, groupings, functions and keywords are taken out."""
    query = re.sub(r'"(?:[^"\\]|\\.)*"', "", query)
    query = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", query)
    query = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", query)
    words = re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\()", query)
    return {w for w in words if w.lower() not in _KEYWORDS}


def _ray_exported_names(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The names Ray's exporter gives the scorer's Ray metrics (as Ray 2.60 writes them on
    a node's metrics port: ray_ prefix, _total on counters, histogram series)."""
    from ray.serve import metrics as serve_metrics  # noqa: PLC0415

    from payments_ml.serving.metrics import ScorerMetrics  # noqa: PLC0415

    suffixes = {"Counter": ["_total"], "Gauge": [""], "Histogram": ["_bucket", "_sum", "_count"]}
    names: set[str] = set()
    for kind, ends in suffixes.items():
        made = getattr(serve_metrics, kind)

        def record(name: str, *args: Any, _made: Any = made, _ends: list = ends, **kw: Any) -> Any:
            names.update(f"ray_{name}{end}" for end in _ends)
            return _made(name, *args, **kw)

        monkeypatch.setattr(serve_metrics, kind, record)
    ScorerMetrics(ray_metrics=True)
    return names


def _check_layout(dashboard: dict[str, Any]) -> None:
    """Unique panel ids, every panel within Grafana's 24 columns, on the dashboard's
    datasource variable."""
    panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(ids)}"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in panels:
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24, f"panel {panel['title']!r} is wider than 24"
        if panel["type"] != "row":
            uid = panel["datasource"]["uid"]
            assert uid.strip("${}") in variables, f"panel {panel['title']!r}: datasource {uid}"
