"""The scorer against hostile input, crashes, outages and overload, over real HTTP.

One Serve application (two replicas, HAProxy hardened as `make run` runs it) on the
session's Ray cluster; each test states what a client sees.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests.conftest import free_port
from tests.serving.conftest import stop_serve
from tests.serving.faults import switchable_model
from tests.serving.load import kill_replica, replica_pids, request_body, steady_load, wait_for_log

pytestmark = pytest.mark.slow

APP = "faults"
INT64_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def scorer(ray_session, tmp_path_factory, snapshots, generated_transactions, small_model):
    """Two replicas over a packed SQLite store holding a mid-history day's snapshot."""
    from ray import serve  # noqa: PLC0415

    from payments_ml.serving.app import FraudScorer  # noqa: PLC0415
    from tests.serving.conftest import mid_history_store  # noqa: PLC0415

    root = tmp_path_factory.mktemp("faults")
    repo = mid_history_store(root, snapshots, generated_transactions)
    midnight = repo["midnight"]
    switches = root / "switches"
    switches.mkdir()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    model = switchable_model(small_model, switches)
    logged = root / "scored_transactions"

    def deploy(**options) -> None:
        options = {"num_replicas": 2, "ray_actor_options": {"num_cpus": 0.5}, **options}
        serve.run(
            FraudScorer.options(**options).bind(
                lambda: model,
                repo["config"],
                ray_metrics=False,
                score_log={"path": str(logged), "flush_seconds": 0.3, "lease_s": 2},
                settings={"online_store_timeout_s": 0.25, "event_time": {"max_ahead_s": 300}},
            ),
            name=APP,
            route_prefix="/",
        )

    deploy()
    rows = repo["day_rows"]
    yield {
        "url": f"http://127.0.0.1:{port}",
        "rows": rows.sort_values("event_timestamp").reset_index(drop=True),
        "midnight": midnight,
        "logged": logged,
        "switches": switches,
        "store": repo["store"],
        "deploy": deploy,
    }
    stop_serve()


def _together(url: str, bodies: list[dict]) -> list[requests.Response]:
    """All bodies POSTed to /score at once (so that the replicas batch them)."""
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(lambda b: requests.post(f"{url}/score", json=b, timeout=30), bodies))


@contextlib.contextmanager
def _switch(scorer, name: str, value: str = "") -> None:
    path = scorer["switches"] / name
    path.write_text(value)
    try:
        yield
    finally:
        path.unlink()


@pytest.mark.parametrize("field", ["customer_id", "card_id", "merchant_id"])
def test_an_id_beyond_int64_is_a_422_and_fails_none_of_its_neighbours(scorer, field):
    rows = scorer["rows"]
    valid = [
        request_body(r, transaction_id=f"n-{field}-{i}")
        for i, (_, r) in enumerate(rows[:40].iterrows())
    ]
    poison = request_body(rows.iloc[40], transaction_id=f"p-{field}", **{field: INT64_MAX + 1})
    answers = _together(scorer["url"], [*valid[:20], poison, *valid[20:]])
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 40, Counter(statuses)
    refused = answers[20]
    assert refused.status_code == 422 and refused.json()["detail"].startswith(field)
    largest = request_body(rows.iloc[41], transaction_id=f"max-{field}", **{field: INT64_MAX})
    whole = request_body(rows.iloc[42], transaction_id=f"whole-{field}", **{field: 7824.0})
    for body in (largest, whole):
        assert requests.post(f"{scorer['url']}/score", json=body, timeout=30).status_code == 200


def test_an_error_scoring_one_transaction_fails_that_transaction_alone(scorer):
    """A model bug that hits transactions at 23:xx: they fail (500), their batch
    neighbours are scored, over /score (batched by the replica) and /score/batch."""
    rows = scorer["rows"]
    late = scorer["midnight"] + pd.Timedelta(hours=23, minutes=30)
    valid = [
        request_body(r, transaction_id=f"b-{i}") for i, (_, r) in enumerate(rows[:40].iterrows())
    ]
    poison = request_body(
        rows.iloc[40], transaction_id="b-poison", event_timestamp=late.isoformat()
    )
    with _switch(scorer, "poison"):
        answers = _together(scorer["url"], [*valid, poison])
        batch = requests.post(
            f"{scorer['url']}/score/batch",
            json={"transactions": [*valid[:5], poison | {"transaction_id": "bb-poison"}]},
            timeout=30,
        )
    assert [a.status_code for a in answers] == [200] * 40 + [500]
    assert "could not be scored" in answers[-1].json()["detail"]
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert [r.get("error") is None for r in results] == [True] * 5 + [False]
    assert results[-1]["transaction_id"] == "bb-poison"
    metrics = requests.get(f"{scorer['url']}/metrics", timeout=10).text
    grouped = [line for line in metrics.splitlines() if line.startswith("scorer_batch_size_count")]
    assert grouped  # the replicas batched requests (see scorer_batch_size)


def test_event_times_out_of_range_or_ahead_of_the_clock_are_refused(scorer):
    """Far ahead of the server clock, year 1, year 9999: 422 naming event_timestamp. A
    transaction accepted far ahead of the replayed day does not blind the day's count."""
    rows = scorer["rows"]
    customer = rows.iloc[0]
    url = scorer["url"]
    now = pd.Timestamp.now(tz="UTC")
    for stamp in (
        (now + pd.Timedelta(days=400)).isoformat(),
        (now + pd.Timedelta(minutes=10)).isoformat(),
        "0001-01-01T12:00:00+05:00",
        "9999-12-31T12:00:00Z",
    ):
        body = request_body(customer, transaction_id=f"t-{stamp}", event_timestamp=stamp)
        answer = requests.post(f"{url}/score", json=body, timeout=30)
        assert answer.status_code == 422, (stamp, answer.text)
        assert answer.json()["detail"].startswith("event_timestamp"), answer.text
    batch = requests.post(
        f"{url}/score/batch",
        json={"transactions": [request_body(customer, event_timestamp="9999-01-01T00:00:00Z")]},
        timeout=30,
    )
    assert batch.status_code == 422
    assert batch.json()["detail"].startswith("transactions.0.event_timestamp")

    # Accepted (before the server clock) but 400 days after the replayed day.
    day = scorer["midnight"]
    fresh_customer = 4_000_000_000 + int(time.time())
    ahead = day + pd.Timedelta(days=400, hours=12)
    assert ahead < now
    first = request_body(customer, customer_id=fresh_customer, transaction_id="ahead")
    first["event_timestamp"] = ahead.isoformat()
    assert requests.post(f"{url}/score", json=first, timeout=30).status_code == 200
    counts = []
    for i in range(4):
        stamp = day + pd.Timedelta(hours=9, minutes=i)
        body = request_body(
            customer,
            customer_id=fresh_customer,
            transaction_id=f"day-{i}",
            event_timestamp=stamp.isoformat(),
        )
        answer = requests.post(f"{url}/score", json=body, timeout=30).json()
        counts.append(answer["features_used"]["customer_tx_count_1d"])
    assert counts == [0, 1, 2, 3]


def test_bodies_are_limited_as_read_and_slow_headers_are_cut(scorer):
    url = scorer["url"]

    def chunks(total: int):
        piece = b'{"transactions": [' + b" " * 65_536
        sent = 0
        while sent < total:
            yield piece
            sent += len(piece)

    for size in (2_000_000, 8_000_000):  # chunked: no Content-Length to refuse up front
        answer = requests.post(
            f"{url}/score/batch",
            data=chunks(size),
            headers={"content-type": "application/json"},
            timeout=60,
        )
        assert answer.status_code == 413, answer.text
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        start = time.monotonic()
        reply = b""
        while chunk := conn.recv(4096):
            reply += chunk
        waited = time.monotonic() - start
    assert waited < 12 and reply.startswith(b"HTTP/1.1 408"), (waited, reply[:100])


def test_store_moved_aside_or_locked_answers_503_fast_and_recovers(scorer):
    """The embedded store's file moved aside, then its write lock held: 503 with
    Retry-After within a second, /health degraded within a second and never slow;
    back by itself; the file is never recreated empty."""
    from payments_ml.feature_store.online_store import view_path  # noqa: PLC0415

    url, rows = scorer["url"], scorer["rows"]
    config = scorer["store"].config
    health = _health_poller(url)

    def score(i: int) -> requests.Response:
        body = request_body(rows.iloc[50 + i % 20], transaction_id=f"outage-{i}-{time.time_ns()}")
        return requests.post(f"{url}/score", json=body, timeout=30)

    assert score(0).status_code == 200
    snapshot = view_path(config, "customer_snapshot")
    aside = snapshot.with_name("moved-aside.db")
    snapshot.rename(aside)
    try:
        start = time.monotonic()
        down = score(1)
        assert down.status_code == 503 and down.headers["Retry-After"] == "1"
        assert time.monotonic() - start < 1.0
        assert snapshot.name in down.json()["detail"]
        health.wait_for("degraded", within_s=1.5)
        assert not snapshot.exists()
    finally:
        aside.rename(snapshot)
    health.wait_for("ok", within_s=3)
    _within(2.5, lambda: score(2).status_code == 200)
    time.sleep(1.5)  # every replica's probe has seen the store back (retry_after_s + 0.5)

    holder = sqlite3.connect(view_path(config, "customer_today"))
    holder.execute("BEGIN IMMEDIATE")
    try:
        start = time.monotonic()
        locked = score(3)
        assert locked.status_code == 503 and time.monotonic() - start < 1.0
        assert "locked" in locked.json()["detail"]
        health.wait_for("degraded", within_s=1.5)
    finally:
        holder.rollback()
        holder.close()
    health.wait_for("ok", within_s=3)
    _within(2.5, lambda: score(4).status_code == 200)
    assert health.slowest_s < 1.0, health.slowest_s
    time.sleep(1.5)  # every replica's probe has seen the lock go (the next test loads both)


def _within(seconds: float, check) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not back within {seconds} s"
        time.sleep(0.05)


class _health_poller:  # noqa: N801 (reads as a function at the call site)
    """GET /health until a wanted status, recording the slowest answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest_s = 0.0

    def wait_for(self, status: str, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while True:
            start = time.monotonic()
            answer = requests.get(f"{self.url}/health", timeout=10).json()
            self.slowest_s = max(self.slowest_s, time.monotonic() - start)
            if answer["status"] == status:
                return
            assert time.monotonic() < deadline, f"/health still {answer} after {within_s} s"
            time.sleep(0.05)


def test_a_replica_killed_under_load_fails_under_1_percent_and_loses_no_answer(scorer):
    """50 requests/s, one of two replicas SIGKILLed: under 1 % fail; every transaction
    answered 200 is in the scored log exactly once (its outbox record was written with
    its append, before the answer)."""
    answered = _load_with_a_kill(scorer, "two")
    failed = [
        (round(o.sent_s, 3), o.status, round(o.seconds, 3)) for o in answered if o.status != 200
    ]
    assert len(failed) / len(answered) < 0.01, failed
    _assert_logged_once(scorer, answered, "two")


@pytest.fixture(scope="module")
def one_replica(scorer):
    """The application with one replica that works on 4 requests and queues 4 (the tests
    from here on; one redeploy for all of them)."""
    scorer["deploy"](num_replicas=1, max_ongoing_requests=4, max_queued_requests=4)
    _wait_ready(scorer["url"])
    return scorer


def test_cancelled_requests_are_counted_apart_from_server_errors(one_replica):
    """Clients that give up while the replica is busy: status 499, not 500."""
    scorer = one_replica
    url, rows = scorer["url"], scorer["rows"]

    def counts() -> tuple[str, Counter]:
        answer = requests.get(f"{url}/metrics", timeout=10)
        found = Counter()
        for line in answer.text.splitlines():
            if line.startswith('scorer_requests_total{route="/score"'):
                status = line.split('status="')[1].split('"')[0]
                found[status] += float(line.rsplit(" ", 1)[1])
        return answer.headers.get("X-Served-By"), found

    def impatient(i: int) -> tuple[str, float]:
        body = request_body(rows.iloc[i], transaction_id=f"impatient-{i}-{time.time_ns()}")
        start = time.monotonic()
        try:
            outcome = str(requests.post(f"{url}/score", json=body, timeout=0.1).status_code)
        except requests.RequestException as error:
            outcome = type(error).__name__
        return outcome, round(time.monotonic() - start, 3)

    before = counts()
    with _switch(scorer, "slow", "0.4"):
        with ThreadPoolExecutor(max_workers=12) as pool:
            clients = list(pool.map(impatient, range(12)))
        time.sleep(1.5)
    after = counts()
    seen = (before, after, clients)
    assert after[1]["499"] - before[1]["499"] >= 1, seen
    assert after[1]["500"] == before[1]["500"], seen


def test_with_one_replica_a_restart_answers_503_within_a_second(one_replica):
    """One replica SIGKILLed: while it restarts, requests get a 503 with Retry-After
    within a second (no queueing); the answered ones are logged exactly once."""
    scorer = one_replica
    answered = _load_with_a_kill(scorer, "one")
    failed = [o for o in answered if o.status != 200]
    assert failed, "the kill should have cost some requests"
    unanswered = [o for o in failed if o.status == 0]
    assert len(unanswered) <= 3  # in flight on the killed replica
    refused = [o for o in failed if o.status != 0]
    assert all(o.status == 503 and o.retry_after == "1" for o in refused), refused[:5]
    assert max(o.seconds for o in refused) < 1.0
    _assert_logged_once(scorer, answered, "one")


def test_overload_is_refused_fast_by_a_bounded_queue(one_replica):
    """More requests than a replica works on and queues: the rest get 503 at once."""
    scorer = one_replica
    _wait_ready(scorer["url"])
    with _switch(scorer, "slow", "0.2"):
        bodies = [
            request_body(r, transaction_id=f"flood-{i}-{time.time_ns()}")
            for i, (_, r) in enumerate(scorer["rows"][:60].iterrows())
        ]
        start = time.monotonic()
        answers = _together(scorer["url"], bodies)
        took = time.monotonic() - start
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {200, 503} and statuses[503] > 0, statuses
    assert all(a.headers.get("Retry-After") for a in answers if a.status_code == 503)
    assert took < 15, took


def _load_with_a_kill(scorer, tag: str) -> list:
    rows = scorer["rows"]
    bodies = [
        request_body(rows.iloc[i % len(rows)], transaction_id=f"kill-{tag}-{i}-{time.time_ns()}")
        for i in range(400)
    ]
    _wait_ready(scorer["url"])
    pids = replica_pids(APP)
    assert pids
    return steady_load(scorer["url"], bodies, rate=50, at={2.0: kill_replica(APP)})


def _assert_logged_once(scorer, answered: list, tag: str) -> None:
    ok = {o.transaction_id for o in answered if o.status == 200}
    log = wait_for_log(Path(scorer["logged"]), ok, timeout_s=60)
    mine = log[log["transaction_id"].astype(str).str.startswith(f"kill-{tag}-")]
    counts = mine["transaction_id"].value_counts()
    assert ok <= set(counts.index), f"{len(ok - set(counts.index))} answered but not logged"
    assert counts.max() == 1, counts[counts > 1].head()


def _wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            answer = requests.get(f"{url}/health", timeout=2)  # 503s while it restarts
            if answer.status_code == 200 and answer.json()["status"] == "ok":
                return
        time.sleep(0.2)
    pytest.fail("the scorer did not come back")
