"""The scorer's pages for people: /docs, /redoc and /dashboard, offline, under a route prefix.

Checks that tests/serving/test_app.py runs against its scorer, deployed with Serve under
a route prefix (as behind an ingress shared with other apps) so that every URL the pages
build is checked to carry the prefix. The pages are opened in headless Chromium that
cannot reach anything but 127.0.0.1, and every request the browser made is listed from
its network log.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd
import pytest
import requests

from tests.conftest import free_port
from tests.serving.load import request_body

ASSET_TYPES = {  # file ending -> the content type it must be served with
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".svg": ("image/svg+xml",),
    ".json": ("application/json",),
}


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium whose only reachable host is 127.0.0.1: other names do not
    resolve and other addresses go to a closed proxy port. Its network log is on."""
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    from tests.system_packages import require  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = require("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--proxy-server=http://127.0.0.1:{free_port()}",  # loopback bypasses it
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(require("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def requested(driver: Any) -> list[str]:
    """The URLs the browser requested since the last call (its performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def foreign(urls: list[str], origin: str) -> list[str]:
    """The URLs not of the scorer (``data:`` ones and the page's own ``blob:`` are)."""
    return [u for u in urls if not u.removeprefix("blob:").startswith((origin + "/", "data:"))]


def check_doc_page_assets(origin: str, prefix: str, page: str) -> None:
    """No CDN: every script, style sheet, icon and the schema of ``page`` come from the
    scorer, under its route prefix, with their content types."""
    html = requests.get(f"{origin}{prefix}/{page}", timeout=30)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert re.findall(r"https?://[^\s\"'<>]+", html.text) == []
    linked = re.findall(r'(?:src|href|spec-url)="([^"]+)"|url: \'([^\']+)\'', html.text)
    linked = [a or b for a, b in linked] + ([f"{prefix}/{page}/logo-mini.svg"] * (page == "redoc"))
    assert len(linked) >= 3  # script, schema, icon; Swagger's style sheet
    for path in linked:
        assert path.startswith(f"{prefix}/"), f"{path} lacks the route prefix"
        answer = requests.get(origin + path, timeout=30)
        kind = answer.headers.get("content-type", "")
        assert answer.status_code == 200, f"{path}: {answer.status_code}"
        assert kind.startswith(ASSET_TYPES["." + path.rsplit(".", 1)[-1]]), f"{path}: {kind}"
        assert len(answer.content) > 500, f"{path} is nearly empty"


def check_schema_examples(url: str, prefix: str) -> None:
    """The request examples /docs shows are valid: each is scored (200), in field order,
    and the schema names the route prefix as its server."""
    schema = requests.get(f"{url}/openapi.json", timeout=30).json()
    assert {"url": prefix} in schema.get("servers", []), "Try it out would miss the prefix"
    components = schema["components"]["schemas"]
    examples = components["Transaction"]["examples"]
    assert examples and all(list(e)[0] == "transaction_id" for e in examples)
    for example in examples:
        answer = requests.post(f"{url}/score", json=example, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["transaction_id"] == example["transaction_id"]
    (batch,) = components["BatchRequest"]["examples"]
    answer = requests.post(f"{url}/score/batch", json=batch, timeout=30)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["transaction_id"] for r in results] == [t["transaction_id"] for t in examples]
    assert all("error" not in r for r in results)
    metrics = requests.get(f"{url}/metrics", timeout=30).text  # counted under the prefix too
    assert 'scorer_requests_total{route="/score/batch",status="200"}' in metrics


def check_try_it_out(url: str, origin: str, browser: Any) -> None:
    """Swagger UI draws every operation without internet, and "Try it out" on /score
    sends the example through the route prefix and shows the 200 answer; Redoc draws."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    requested(browser)
    browser.get(f"{url}/docs")
    wait = WebDriverWait(browser, 30)
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= 5)
    paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert {"/score", "/score/batch", "/health", "/metrics"} <= set(paths)
    operation = browser.find_element(By.ID, "operations-default-score_score_post")
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    operation.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, ".execute"))
    operation.find_element(By.CSS_SELECTOR, ".execute").click()
    wait.until(lambda _: operation.find_elements(By.CSS_SELECTOR, ".live-responses-table"))
    status = operation.find_element(
        By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"
    )
    assert status.text.strip() == "200", operation.text[-2000:]
    answer = operation.find_element(By.CSS_SELECTOR, ".live-responses-table")
    assert '"decision"' in answer.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", answer)
    assert browser.save_screenshot("/tmp/docs.png")
    browser.get(f"{url}/redoc")
    wait.until(lambda b: "/score/batch" in b.find_element(By.TAG_NAME, "body").text)
    urls = requested(browser)
    assert f"{url}/docs/static/swagger/swagger-ui-bundle.js" in urls
    assert f"{url}/docs/static/redoc/redoc.standalone.js" in urls
    assert foreign(urls, origin) == [], "requests beyond the scorer"


def check_dashboard_tiles(url: str, origin: str, rows: pd.DataFrame, browser: Any) -> None:
    """The error-rate tile counts refused requests (the one sent here must be the only
    one of the last minute); the decision tile says what its three numbers are and the
    thresholds behind them; one spike does not flatten a chart."""
    from selenium.common.exceptions import TimeoutException  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    earlier = requests.get(f"{url}/dashboard/data", timeout=30).json()["live"]["errors"]
    assert earlier == 0, f"{earlier} refused requests in the last minute: run this check first"
    for i in range(4):
        body = request_body(rows.iloc[i]) | {"transaction_id": f"page-{i}"}
        assert requests.post(f"{url}/score", json=body, timeout=30).status_code == 200
    bad = request_body(rows.iloc[0]) | {"amount": -1}
    assert requests.post(f"{url}/score", json=bad, timeout=30).status_code == 422
    requested(browser)
    browser.get(f"{url}/dashboard")

    def text(name: str) -> str:
        return browser.find_element(By.ID, name).text

    try:
        WebDriverWait(browser, 30).until(lambda _: text("error-rate") not in ("", "–"))
    except TimeoutException:
        data = requests.get(f"{url}/dashboard/data", timeout=30)
        pytest.fail(f"no error rate shown; page status {text('status')!r}, data: {data.text[:500]}")
    assert "warn" in browser.find_element(By.ID, "error-rate").get_attribute("class")
    assert 0 < float(text("error-rate").removesuffix(" %")) < 100
    assert re.fullmatch(r"1 of \d+ requests; 5xx: 0", text("error-detail"))
    assert text("decision-label") == "approve / review / decline"
    assert text("decision-rule") == "review if fraud probability ≥ 0.05, decline if ≥ 0.5"
    assert re.fullmatch(r"\d+ / \d+ / \d+", text("decision-mix"))
    assert browser.save_screenshot("/tmp/dashboard.png")
    scales = browser.execute_script(
        "const steady = Array(40).fill(20), level = steady.concat(Array(5).fill(90));"
        "return [axisScale([steady.concat([400])]), axisScale([level]), axisScale([[3, 40]]),"
        "        axisScale([steady.concat([null]), steady.concat([400])])];"
    )
    spike, level, sparse, two_lines = scales
    assert spike["clipped"] and spike["peak"] == 400 and 20 < spike["max"] < 40
    assert not level["clipped"] and level["max"] >= 90  # a new level: kept
    assert not sparse["clipped"] and two_lines["clipped"]  # too few slots; p95 spikes alone
    assert foreign(requested(browser), origin) == []


def check_docs_without_their_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica lacking Swagger UI's files still starts (and scores); /docs answers 503
    naming the package to install."""
    import asyncio  # noqa: PLC0415

    from fastapi import FastAPI  # noqa: PLC0415

    from payments_ml.serving import docs_pages  # noqa: PLC0415

    monkeypatch.setitem(docs_pages.ASSETS, "swagger_js", "swagger/gone.js")
    api = FastAPI(docs_url=None, redoc_url=None)
    docs_pages.add_docs_pages(api)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/docs", "root_path": ""}
    asyncio.run(api(scope | {"headers": [], "query_string": b""}, receive, send))
    assert sent[0]["status"] == 503
    assert b"fastapi-standalone-docs lacks swagger/gone.js" in sent[1]["body"]
