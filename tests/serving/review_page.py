"""The review loop on tests/serving/test_app.py's scorer, in headless Chromium: the
analysts' queue while a replay runs, a verdict given in the page, the labels feed, the
blocked card declined over HTTP, the review precision on the dashboard."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import requests

from tests.serving.load import replay_day


def _queue(url: str, day: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queue = requests.get(f"{url}/review/queue", params={"day": day}, timeout=30).json()
        if queue["cards"]:
            return queue
        time.sleep(0.3)
    raise AssertionError("no card reached the review queue in 30 s")


def check_review_loop(endpoint: dict, browser: Any, shots: Any, token: str) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    url = endpoint["url"]
    # The replayed day (other tests log transactions of other days, later ones too).
    day = endpoint["rows"]["event_timestamp"].iloc[0].date().isoformat()
    stop = threading.Event()
    sender = threading.Thread(
        target=replay_day, args=(url, endpoint["rows"], stop, "rq"), daemon=True
    )
    sender.start()
    try:
        queue = _queue(url, day)
        top = queue["cards"][0]
        probabilities = [c["max_probability"] for c in queue["cards"]]
        assert probabilities == sorted(probabilities, reverse=True)
        _anonymous_writes_are_refused(url, queue["day"], top)

        browser.get(f"{url}/review#day={day}")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "section[data-testid=card]"))
        first = browser.find_elements(By.CSS_SELECTOR, "section[data-testid=card]")[0]
        card_id = int(first.get_attribute("data-card"))
        # PAYMENTS_ML_SCREENSHOTS=<folder> keeps it (docs/images/review-queue.png).
        shot = Path(os.environ.get("PAYMENTS_ML_SCREENSHOTS", shots)) / "review-queue.png"
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000

        browser.find_element(By.ID, "token").send_keys(token)
        first.find_element(By.CSS_SELECTOR, "input.note").send_keys("test: stolen card")
        first.find_element(By.CSS_SELECTOR, "button[data-act=card-fraud]").click()
        wait.until(lambda b: "recorded" in b.find_element(By.ID, "message").text)
        confirmed = time.monotonic()
        assert f"card {card_id} blocked" in browser.find_element(By.ID, "message").text
        _next_transaction_is_declined(url, day, card_id, confirmed)
    finally:
        stop.set()
        sender.join(timeout=30)
    _verdicts_are_in_the_labels_feed(endpoint["labels"], card_id)
    _dashboard_shows_the_review_precision(url, day, browser, wait)
    _an_analyst_unblocks_the_card(url, day, card_id, token)


def _anonymous_writes_are_refused(url: str, day: str, card: dict) -> None:
    ids = [t["transaction_id"] for t in card["transactions"]]
    body = {"day": day, "card_id": card["card_id"], "transaction_ids": ids, "verdict": "fraud"}
    for headers in ({}, {"authorization": "Bearer not-a-token"}):
        answer = requests.post(f"{url}/review/verdicts", json=body, headers=headers, timeout=30)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        blocked = requests.post(
            f"{url}/review/cards/{card['card_id']}/block", json={}, headers=headers, timeout=30
        )
        assert blocked.status_code == 401
    assert requests.get(f"{url}/review/audit", timeout=30).status_code == 401


def _next_transaction_is_declined(url: str, day: str, card_id: int, confirmed: float) -> None:
    """A transaction of the blocked card, sent right after the page confirmed the
    verdict: declined with card_blocked within a second of the confirmation."""
    status = {"status": "fraud", "day": day}
    queue = requests.get(f"{url}/review/queue", params=status, timeout=30).json()
    (card,) = [c for c in queue["cards"] if c["card_id"] == card_id]
    assert card["block"]["blocked"] and card["block"]["analyst"] == "ana"
    seen = card["transactions"][0]
    body = {
        "transaction_id": "after-the-block",
        "event_timestamp": seen["event_timestamp"],
        "customer_id": card["customer_id"],
        "card_id": card_id,
        "merchant_id": seen["merchant_id"],
        "amount": seen["amount"],
    }
    answer = requests.post(f"{url}/score", json=body, timeout=30).json()
    assert time.monotonic() - confirmed < 1.0
    assert answer["decision"] == "decline"
    assert answer["reasons"][0] == {"feature": "card_blocked", "value": 1.0, "contribution": None}


def _verdicts_are_in_the_labels_feed(labels: Any, card_id: int) -> None:
    reports = pq.read_table(labels).to_pandas()
    assert len(reports) >= 1 and set(reports["source"]) == {"analyst"}
    assert set(reports["analyst"]) == {"ana"} and set(reports["note"]) == {"test: stolen card"}
    assert reports["is_fraud"].all() and reports["report_date"].nunique() == 1


def _dashboard_shows_the_review_precision(url: str, day: str, browser: Any, wait: Any) -> None:
    """The dashboard's review panel: the replayed day's row says 1 card reviewed, 1
    confirmed, precision 100 % (the headline is the log's latest day's)."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    days = requests.get(f"{url}/review/outcome", timeout=30).json()["days"]
    (outcome,) = [d for d in days if d["day"] == day]
    assert outcome["cards_reviewed"] == outcome["cards_confirmed_fraud"] == 1
    assert outcome["review_precision"] == 1.0 and outcome["median_minutes_to_verdict"] > 0
    browser.get(f"{url}/dashboard")
    wait.until(lambda b: b.find_element(By.ID, "review-precision").text not in ("", "–"))
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#review tr")]
    (row,) = [r for r in rows if r.startswith(day)]
    assert "100.0 %" in row, row


def _an_analyst_unblocks_the_card(url: str, day: str, card_id: int, token: str) -> None:
    """Unblocked over HTTP with the token: the card's next transaction is the model's again,
    and the audit log holds the block and the unblock, by the analyst."""
    auth = {"authorization": f"Bearer {token}"}
    done = requests.post(
        f"{url}/review/cards/{card_id}/unblock", json={"note": "reissued"}, headers=auth, timeout=30
    ).json()
    assert done["changed"] and not done["block"]["blocked"]
    body = {"day": day, "status": "fraud"}
    (card,) = [
        c
        for c in requests.get(f"{url}/review/queue", params=body, timeout=30).json()["cards"]
        if c["card_id"] == card_id
    ]
    seen = card["transactions"][0]
    answer = requests.post(
        f"{url}/score",
        json={
            "transaction_id": "after-the-unblock",
            "event_timestamp": seen["event_timestamp"],
            "customer_id": card["customer_id"],
            "card_id": card_id,
            "merchant_id": seen["merchant_id"],
            "amount": seen["amount"],
        },
        timeout=30,
    ).json()
    assert all(r["feature"] != "card_blocked" for r in answer["reasons"])
    audit = requests.get(f"{url}/review/audit", headers=auth, timeout=30).json()["entries"]
    actions = [(e["action"], e["key"]) for e in audit if e["key"] == f"card:{card_id}"]
    assert actions == [("unblock", f"card:{card_id}"), ("block", f"card:{card_id}")]
    assert {e["analyst"] for e in audit} == {"ana"}
