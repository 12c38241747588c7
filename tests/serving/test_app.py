"""The HTTP API on a real Ray Serve application (127.0.0.1, a free port, route prefix
``/scorer``), its pages for people (tests/serving/pages.py) and Prometheus scraping it
(tests/serving/prometheus.py): one deployment for all of them.

The tests run in the order written: the dashboard's error-rate tile must count the one
refused request its test sends, so that test runs before those that send others.
"""

from __future__ import annotations

import time

import pytest
import requests

from payments_ml.monitoring.alerts import append_alerts
from payments_ml.serving.review import token_digest
from payments_ml.serving.schemas import MAX_BATCH
from tests.conftest import free_port
from tests.serving import pages
from tests.serving import prometheus as prom
from tests.serving.conftest import stop_serve
from tests.serving.load import replay_day, request_body
from tests.serving.pages import browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow
PREFIX = "/scorer"  # as behind an ingress shared with other apps
ANALYST_TOKEN = "ana-test-token"  # noqa: S105 (a test analyst's)


@pytest.fixture(scope="module")
def serve_port() -> int:
    """The Serve ingress's port, chosen before Prometheus starts (it scrapes there)."""
    return free_port()


@pytest.fixture(scope="module", autouse=True)
def prometheus(serve_port, tmp_path_factory):
    """Prometheus scraping this module's scorer, started (when installed) before Serve
    deploys it: the ~5 s before its first scrape overlap the deployment. Stopped after."""
    server = prom.Prometheus(
        tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{serve_port}", f"{PREFIX}/metrics"
    )
    server.start_early()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def endpoint(  # noqa: PLR0917 (fixtures)
    ray_session, serve_port, tmp_path_factory, snapshots, generated_transactions, small_model
):
    """The scorer deployed with Serve (one replica) under ``/scorer`` on the session's Ray
    cluster, torn down after. ``url`` includes the prefix; ``origin`` does not."""
    from ray import serve  # noqa: PLC0415

    from payments_ml.serving.app import FraudScorer  # noqa: PLC0415
    from tests.serving.conftest import mid_history_store  # noqa: PLC0415

    repo = mid_history_store(tmp_path_factory.mktemp("serve"), snapshots, generated_transactions)
    serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
    model = small_model
    logged = tmp_path_factory.mktemp("scored") / "scored_transactions"
    alerts = logged.parent / "alerts.jsonl"
    append_alerts(alerts, [_alert("run-1", "critical", "row_count")])  # an older run
    append_alerts(alerts, [_alert("run-2", "info", "psi"), _alert("run-2", "warning", "null_rate")])
    labels = logged.parent / "labels"
    serve.run(
        FraudScorer.bind(
            lambda: model,
            repo["config"],
            ray_metrics=False,
            score_log={"path": str(logged), "flush_seconds": 0.3},
            alerts_path=str(alerts),
            settings={"review": {"analysts": {"ana": token_digest(ANALYST_TOKEN)}}},
            labels_path=str(labels),
        ),
        name="scorer-test",
        route_prefix=PREFIX,
    )
    origin = f"http://127.0.0.1:{serve_port}"
    rows = repo["day_rows"]
    yield {
        "url": origin + PREFIX,
        "origin": origin,
        "rows": rows.sort_values("event_timestamp").reset_index(drop=True),
        "logged": logged,
        "labels": labels,
    }
    stop_serve()


def _alert(run_id: str, severity: str, metric: str) -> dict:
    return {
        "severity": severity,
        "timestamp": "2025-06-29T06:30:00Z",
        "metric": metric,
        "value": 0.3,
        "threshold": 0.1,
        "run_id": run_id,
        "day": "2025-06-28",
    }


def test_score_answers_the_contract(endpoint):
    body = request_body(endpoint["rows"].iloc[0])
    answer = requests.post(f"{endpoint['url']}/score", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert set(result) == {
        "transaction_id",
        "fraud_probability",
        "decision",
        "model_version",
        "reasons",
        "features_used",
    }
    assert result["transaction_id"] == body["transaction_id"] and result["model_version"] == "7"
    assert 0 <= result["fraud_probability"] <= 1
    assert result["decision"] in {"approve", "review", "decline"}


def test_batch_answers_in_order(endpoint):
    bodies = [request_body(r) for _, r in endpoint["rows"].iloc[1:41].iterrows()]
    answer = requests.post(
        f"{endpoint['url']}/score/batch", json={"transactions": bodies}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    ids = [r["transaction_id"] for r in answer.json()["results"]]
    assert ids == [b["transaction_id"] for b in bodies]


def test_review_queue_in_headless_chromium_blocks_a_confirmed_card(endpoint, browser, tmp_path):  # noqa: F811
    """The analyst's loop while a replay runs: the queue, a verdict given in the page (the
    labels feed holds it), the card's next transaction declined with card_blocked, the
    review precision on the dashboard; anonymous writes refused. Early in the module: the
    log holds the replayed day alone (later tests score other days); the card is
    unblocked at the end, so later tests see the model's decisions."""
    from tests.serving import review_page  # noqa: PLC0415

    review_page.check_review_loop(endpoint, browser, tmp_path, ANALYST_TOKEN)


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_doc_pages_load_only_the_scorers_own_files(endpoint, page):
    pages.check_doc_page_assets(endpoint["origin"], PREFIX, page)


def test_the_schemas_examples_are_scored(endpoint):
    pages.check_schema_examples(endpoint["url"], PREFIX)


def test_docs_render_and_try_it_out_scores_offline(endpoint, browser):  # noqa: F811
    pages.check_try_it_out(endpoint["url"], endpoint["origin"], browser)


def test_dashboard_shows_error_rate_and_what_decisions_mean(endpoint, browser):  # noqa: F811
    """Before any other test sends a refused request: the tile must count one."""
    pages.check_dashboard_tiles(endpoint["url"], endpoint["origin"], endpoint["rows"], browser)


def test_dashboard_in_headless_chromium_moves_while_a_replay_runs(endpoint, browser, tmp_path):  # noqa: F811
    """The analysts' page, in a real browser: numbers change and the charts are drawn."""
    import threading  # noqa: PLC0415

    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    url, rows = endpoint["url"], endpoint["rows"]
    stop = threading.Event()

    sender = threading.Thread(target=replay_day, args=(url, rows, stop, "ui"), daemon=True)
    sender.start()
    try:
        browser.get(f"{url}/dashboard")
        wait = WebDriverWait(browser, 30)

        def text(name: str) -> str:
            return browser.find_element(By.ID, name).text

        wait.until(lambda _: text("total") not in ("–", "0"))
        first = {name: text(name) for name in ("total", "last-update", "tx-rate", "p50")}
        wait.until(lambda _: text("last-update") != first["last-update"])  # the 5 s refresh
        wait.until(
            lambda _: int(text("total").replace(",", "")) > int(first["total"].replace(",", ""))
        )
        assert float(text("tx-rate")) > 0 and text("p50").endswith(" ms")
        assert text("alert-count") == "1" and "null_rate" in text("alerts")
        assert text("status") == "live"
        drawn = browser.execute_script(
            "const c = document.getElementById(arguments[0]);"
            "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < px.length; i += 4) n += px[i] > 0; return n;",
            "chart-rate",
        )
        assert drawn > 500  # axes, labels and the throughput line
        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
    finally:
        stop.set()
        sender.join(timeout=30)


def test_dashboard_serves_live_figures_and_the_latest_runs_alerts(endpoint):
    url = endpoint["url"]
    page = requests.get(f"{url}/dashboard", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="tx-rate"' in page.text and "setInterval(refresh" in page.text
    for i in range(3):
        requests.post(f"{url}/score", json=request_body(endpoint["rows"].iloc[30 + i]), timeout=30)
    data = requests.get(f"{url}/dashboard/data", timeout=30).json()
    live = data["live"]
    assert live["total_scored"] >= 3 and live["transactions_per_s"] > 0
    assert sum(live["decisions"].values()) >= 3 and live["latency_ms"]["p50"] > 0
    assert 0 <= live["expected_fraud_rate"] <= 1 and len(live["series"]["t"]) == 120
    assert data["online_store_ok"] is True and data["model_version"] == "7"
    # Active: the warnings and criticals of the latest monitoring run only.
    assert [(a["run_id"], a["metric"]) for a in data["alerts"]] == [("run-2", "null_rate")]


def test_health_and_metrics(endpoint):
    health = requests.get(f"{endpoint['url']}/health", timeout=30).json()
    assert health["status"] == "ok" and health["model_version"] == "7"
    assert health["online_store"] == {"type": "packed_sqlite", "ok": True, "error": None}
    for _ in range(3):
        requests.post(
            f"{endpoint['url']}/score", json=request_body(endpoint["rows"].iloc[5]), timeout=30
        )
    time.sleep(0.2)
    text = requests.get(f"{endpoint['url']}/metrics", timeout=30).text
    assert 'scorer_requests_total{route="/score",status="200"}' in text
    assert "scorer_request_latency_seconds_bucket" in text
    assert "scorer_decisions_total" in text and "scorer_feature_store_latency_seconds" in text


def test_scored_transactions_are_logged_with_their_features(endpoint):
    """The scorer's Parquet log (monitoring's input) holds each answer and its features."""
    import pyarrow.dataset as ds  # noqa: PLC0415

    bodies = [
        request_body(r) | {"transaction_id": f"log-{i}"}
        for i, (_, r) in enumerate(endpoint["rows"].iloc[20:25].iterrows())
    ]
    answers = requests.post(
        f"{endpoint['url']}/score/batch", json={"transactions": bodies}, timeout=30
    ).json()["results"]
    deadline = time.monotonic() + 15
    logged = None
    while time.monotonic() < deadline:
        if endpoint["logged"].exists():
            table = ds.dataset(endpoint["logged"], partitioning="hive").to_table().to_pandas()
            logged = table[table["transaction_id"].str.startswith("log-")]
            if len(logged) == len(bodies):
                break
        time.sleep(0.2)
    assert logged is not None and len(logged) == len(bodies)
    logged = logged.set_index("transaction_id")
    for answer in answers:
        row = logged.loc[answer["transaction_id"]]
        assert row["fraud_probability"] == answer["fraud_probability"]
        assert row["decision"] == answer["decision"] and row["model_version"] == "7"
        for name, value in answer["features_used"].items():
            assert (value is None and row[name] != row[name]) or row[name] == value, name
    assert logged["event_date"].nunique() == 1


def test_the_shipped_prometheus_configuration_is_valid_and_scrapes_the_serving_port():
    prom.check_shipped_configuration()


def test_prometheus_reads_back_the_request_counter_the_scorer_counts(prometheus, endpoint):
    prom.check_counter_read_back(prometheus, endpoint["url"], endpoint["rows"])


def test_the_grafana_dashboard_queries_only_metrics_the_scorer_exports(
    prometheus, endpoint, monkeypatch
):
    prom.check_dashboard_queries(prometheus, endpoint["url"], endpoint["rows"], monkeypatch)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": -3.2}, "amount"),
        ({"amount": "many"}, "amount"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"event_timestamp": "yesterday"}, "event_timestamp"),
        ({"transaction_id": None}, "transaction_id"),
    ],
)
def test_bad_fields_get_422_naming_the_field(endpoint, change, field):
    body = request_body(endpoint["rows"].iloc[0]) | change
    answer = requests.post(f"{endpoint['url']}/score", json=body, timeout=30)
    assert answer.status_code == 422 and answer.json()["detail"].startswith(field)


def test_missing_field_empty_oversized_and_malformed_batches(endpoint):
    url = endpoint["url"]
    body = request_body(endpoint["rows"].iloc[0])
    missing = requests.post(f"{url}/score", json={k: v for k, v in body.items() if k != "amount"})
    assert missing.status_code == 422 and "amount: Field required" in missing.json()["detail"]
    empty = requests.post(f"{url}/score/batch", json={"transactions": []})
    assert empty.status_code == 422 and "transactions" in empty.json()["detail"]
    oversized = requests.post(f"{url}/score/batch", json={"transactions": [body] * (MAX_BATCH + 1)})
    assert oversized.status_code == 422 and f"at most {MAX_BATCH}" in oversized.json()["detail"]
    malformed = requests.post(
        f"{url}/score", data=b'{"amount": 3', headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422 and "JSON" in malformed.json()["detail"]
    huge = requests.post(f"{url}/score/batch", data=b"x" * 2_000_001)
    assert huge.status_code == 413


def test_every_answer_names_the_replica_that_gave_it(endpoint):
    """``X-Served-By`` on answers and errors alike (one replica here: one name)."""
    url, body = endpoint["url"], request_body(endpoint["rows"].iloc[0])
    answers = [
        requests.post(f"{url}/score", json=body, timeout=30),
        requests.post(f"{url}/score", json=body | {"amount": -1}, timeout=30),
        requests.post(f"{url}/score/batch", data=b"x" * 2_000_001, timeout=30),
        requests.get(f"{url}/health", timeout=30),
        requests.get(f"{url}/no-such-route", timeout=30),
        requests.post(f"{url}/review/cards/1/block", json={}, timeout=30),
        requests.get(f"{url}/docs", timeout=30),
    ]
    assert [a.status_code for a in answers] == [200, 422, 413, 200, 404, 401, 200]
    names = {a.headers.get("X-Served-By") for a in answers}
    assert len(names) == 1 and names.pop().startswith("scorer-test#FraudScorer#"), names


def test_an_unhandled_error_names_the_replica_too(replay_day, small_model):
    """The 500 Starlette sends for an exception no route handles carries ``X-Served-By``
    (a replica built in this process: outside Serve it is named by its process id)."""
    import asyncio  # noqa: PLC0415
    import gc  # noqa: PLC0415
    import os  # noqa: PLC0415

    from payments_ml.serving.app import FraudScorer, build_api  # noqa: PLC0415

    replica = FraudScorer.func_or_class.__bases__[0](
        lambda: small_model,
        replay_day["config"],
        ray_metrics=False,
        settings={"model_watch_s": None},
    )
    try:
        api = build_api(replica)

        def fail() -> None:
            raise RuntimeError("a bug")

        api.add_api_route("/fail", fail)
        status, headers = asyncio.run(_asgi_get(api, "/fail"))
        assert status == 500
        assert headers["x-served-by"] == f"pid-{os.getpid()}"
    finally:
        replica.__del__()
        gc.unfreeze()


async def _asgi_get(api, path: str) -> tuple[int, dict[str, str]]:
    """Status and headers of ``GET path`` sent straight to an ASGI app (no HTTP server)."""
    sent = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    with pytest.raises(RuntimeError, match="a bug"):  # Starlette answers, then re-raises
        await api(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


def test_unknown_entities_are_scored_with_cold_start(endpoint):
    body = request_body(endpoint["rows"].iloc[0]) | {
        "customer_id": 99_999_999,
        "merchant_id": 77_777_777,
    }
    answer = requests.post(f"{endpoint['url']}/score", json=body, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["features_used"]["customer_tx_count_30d"] == 0


def test_the_served_schema_tells_the_truth(endpoint):
    """schemathesis, every check and phase, against the live scorer: 0 failures.

    What it sends, per phase (schemathesis 4.32, seed fixed, 100 examples):

    - examples: 5, the schema's request examples (2 of ``/score``, 3 of ``/score/batch``);
    - coverage: 227, derived from the schema alone (boundaries, missing and wrong-typed
      fields, other methods): exact, like the examples, and it moves only with a schema;
    - stateful: 0, the schema has no links (no operation takes what another returns);
    - fuzzing: every operation, but not a fixed count. Hypothesis draws some values from
      the literals of every local module loaded in the test process (its "local
      constants": the payments_ml modules imported so far; tests are skipped), so the
      generated bodies change with any edit to src/ and with which test modules pytest
      collected (45 requests with tests/serving, 89 with all of tests/, same code; 78 at
      efcd0bd). Each POST operation's fuzzing stops at its first event time ahead of the
      server clock (a failure to schemathesis, waived here), so that draw sets the count.
      The run is otherwise deterministic: same code and selection, same requests.
    """
    from tests.serving.contract import run_schemathesis  # noqa: PLC0415

    run = run_schemathesis(endpoint["url"], max_examples=100)
    print(  # noqa: T201 (the figure the closing note quotes)
        f"schemathesis: {run.requests} requests, {len(run.failures)} failures, "
        f"{len(run.errors)} errors, {len(run.waived)} waived (ahead of the clock); "
        f"statuses {dict(run.statuses)}; by phase and operation {dict(run.sent)}"
    )
    assert not run.errors, "\n".join(run.errors)
    assert not run.failures, "\n\n".join(dict.fromkeys(run.failures))
    operations = {"POST /score", "POST /score/batch", "GET /health", "GET /metrics"}
    operations |= {"GET /dashboard/data"}
    assert run.requests_in("examples") == 5  # noqa: PLR2004
    assert run.requests_in("coverage") == 227  # noqa: PLR2004
    assert run.requests_in("stateful") == 0
    assert run.operations_in("fuzzing") == operations


def test_without_the_doc_files_the_pages_say_what_to_install(monkeypatch):
    pages.check_docs_without_their_files(monkeypatch)
