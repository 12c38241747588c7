"""Two replicas built by `build_app` (as `kedro run --pipelines serving` builds them),
over HTTP on 127.0.0.1: what must reach every replica does.

- A new champion reaches the running scorer by itself, under load, and so does a
  rollback: the replicas follow ``models:/fraud_model@champion`` in a real MLflow
  registry (SQLite in a temporary folder) with ``serving.model_watch_s`` = 1 s, while a
  client sends a steady 40 requests/s. The alias moves to version 2 (a promotion), then
  back to 1 (a rollback).
- An analyst's block declines the card's transactions on both replicas within a second,
  and an unblock gives the model's decision back; ``X-Served-By`` tells which replica
  answered.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass

import pytest
import requests

from payments_ml.serving.review import token_digest
from tests.conftest import free_port
from tests.serving.conftest import stop_serve
from tests.serving.load import request_body, steady_load

pytestmark = pytest.mark.slow

logger = logging.getLogger(__name__)
APP = "rollout"
WATCH_S = 1.0
# The stated bound: every answer sent this long after the alias moved carries the new
# version (a look at the alias every WATCH_S, then the load and warm-up of the version,
# about 0.3 s alone, given 3 s more on a busy 2-core machine).
BOUND_S = WATCH_S + 3.0
RATE = 40  # requests per second
PROMOTE_AT, ROLL_BACK_AT, SECONDS = 2.0, 7.0, 12.0
ANALYST_TOKEN = "rollout-analyst-token"  # noqa: S105 (a test analyst's)
BLOCK_WITHIN_S = 1.0  # the stated bound (docs/design.md, "Review loop")
ANSWERS_EACH = 5  # answers looked at per replica, before and after each change


@pytest.fixture(scope="module")
def scorer(ray_session, tmp_path_factory, snapshots, generated_transactions, registry):
    """The scorer of `build_app` (two replicas) over a mid-history day's snapshot."""
    from ray import serve  # noqa: PLC0415

    from payments_ml.serving.app import build_app  # noqa: PLC0415
    from tests.serving.conftest import mid_history_store  # noqa: PLC0415

    repo = mid_history_store(tmp_path_factory.mktemp("rollout"), snapshots, generated_transactions)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    app = build_app(
        {
            "tracking_uri": registry["uri"],
            "feast": repo["config"],
            "num_replicas": 2,
            "replica_cpus": 0.5,
            "settings": {
                "model_watch_s": WATCH_S,
                "review": {"analysts": {"ana": token_digest(ANALYST_TOKEN)}},
            },
        }
    )
    serve.run(app, name=APP, route_prefix="/")
    rows = repo["day_rows"]
    yield {
        "url": f"http://127.0.0.1:{port}",
        "rows": rows.sort_values("event_timestamp").reset_index(drop=True),
        "client": registry["client"],
    }
    stop_serve()


def _move_alias(client, version: str, moved: dict[str, float], at: float):
    def move() -> None:
        start = time.perf_counter()
        client.set_registered_model_alias("fraud_model", "champion", version)
        moved[version] = at + time.perf_counter() - start  # when the registry had it

    return move


def _switch_latency(outcomes, since: float, until: float, old: str) -> float:
    """Seconds from ``since`` to the last request sent before ``until`` that was still
    answered by ``old`` (0: none was)."""
    late = [o.sent_s for o in outcomes if since <= o.sent_s < until and o.model_version == old]
    return max(late, default=since) - since


def _versions(url: str, route: str, times: int) -> set[str]:
    """The model versions /health answers over ``times`` calls (the replicas take turns)."""
    return {
        requests.get(f"{url}/{route}", timeout=10).json()["model_version"] for _ in range(times)
    }


def test_a_promotion_and_a_rollback_under_load_fail_no_request(scorer):
    url, rows = scorer["url"], scorer["rows"]
    _wait_for_version(url, "1")
    bodies = [
        request_body(rows.iloc[i % len(rows)], transaction_id=f"rollout-{i}-{time.time_ns()}")
        for i in range(int(RATE * SECONDS))
    ]
    moved: dict[str, float] = {}
    outcomes = steady_load(
        url,
        bodies,
        rate=RATE,
        at={
            PROMOTE_AT: _move_alias(scorer["client"], "2", moved, PROMOTE_AT),
            ROLL_BACK_AT: _move_alias(scorer["client"], "1", moved, ROLL_BACK_AT),
        },
    )

    failed = [o for o in outcomes if o.status != 200]
    assert failed == [], f"{len(failed)} of {len(outcomes)} failed: {failed[:5]}"
    promoted = _switch_latency(outcomes, moved["2"], moved["1"], old="1")
    rolled_back = _switch_latency(outcomes, moved["1"], SECONDS, old="2")
    logger.info(
        "%d requests at %d/s, 0 failed; new version in every answer %.2f s after the "
        "promotion, old one %.2f s after the rollback (bound %.1f s, watch %.1f s)",
        len(outcomes),
        RATE,
        promoted,
        rolled_back,
        BOUND_S,
        WATCH_S,
    )
    before = {o.model_version for o in outcomes if o.sent_s < moved["2"] - 0.1}
    assert before == {"1"}
    assert promoted <= BOUND_S, f"version 2 in every answer only {promoted:.2f} s after"
    assert rolled_back <= BOUND_S, f"version 1 in every answer only {rolled_back:.2f} s after"
    assert {o.model_version for o in outcomes if moved["2"] + BOUND_S < o.sent_s < moved["1"]} == {
        "2"
    }
    assert {o.model_version for o in outcomes if o.sent_s > moved["1"] + BOUND_S} == {"1"}
    assert _versions(url, "health", 6) == {"1"}
    assert _versions(url, "dashboard/data", 6) == {"1"}
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert 'scorer_model_info{version="1"} 1.0' in metrics
    assert "scorer_model_switches_total 2.0" in metrics


def _wait_for_version(url: str, version: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            if _versions(url, "health", 4) == {version}:
                return
        time.sleep(0.2)
    pytest.fail(f"the scorer did not answer /health with version {version}")


@dataclass(frozen=True)
class _Answer:
    """One /score answer: which replica gave it, what it said, when it arrived."""

    replica: str
    decision: str
    first_reason: str | None
    probability: float
    received_s: float  # after the block's (or unblock's) answer


def _score_for(session, url: str, body: dict, since: float) -> list[_Answer]:
    """``body`` scored again and again (the same transaction id: a retry, which leaves the
    card's windows as they were) until each of two replicas gave ANSWERS_EACH answers,
    or BLOCK_WITHIN_S after ``since``."""
    answers: list[_Answer] = []
    seen: Counter = Counter()
    while time.perf_counter() - since < BLOCK_WITHIN_S and not (
        len(seen) >= 2 and min(seen.values()) >= ANSWERS_EACH  # noqa: PLR2004 (two replicas)
    ):
        answer = session.post(f"{url}/score", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        score = answer.json()
        answers.append(
            _Answer(
                replica=answer.headers["X-Served-By"],
                decision=score["decision"],
                first_reason=score["reasons"][0]["feature"] if score["reasons"] else None,
                probability=score["fraud_probability"],
                received_s=time.perf_counter() - since,
            )
        )
        seen[answers[-1].replica] += 1
    return answers


def _change_block(session, url: str, card_id: int, action: str) -> float:
    """Block or unblock ``card_id`` as an analyst; when its answer arrived (perf_counter)."""
    answer = session.post(
        f"{url}/review/cards/{card_id}/{action}",
        json={"note": f"rollout test: {action}"},
        headers={"Authorization": f"Bearer {ANALYST_TOKEN}"},
        timeout=10,
    )
    answered = time.perf_counter()
    assert answer.status_code == 200, answer.text
    assert answer.json()["changed"] is True
    assert answer.headers["X-Served-By"].startswith(f"{APP}#FraudScorer#")
    return answered


def _first_by_replica(answers: list[_Answer]) -> dict[str, float]:
    """Seconds to each replica's first answer."""
    first: dict[str, float] = {}
    for answer in answers:
        first.setdefault(answer.replica, answer.received_s)
    return first


def test_a_block_declines_on_both_replicas_within_a_second_and_an_unblock_undoes_it(scorer):
    """Every answer after the block's is ``decline`` with ``card_blocked`` first, and each
    of the two replicas (told apart by ``X-Served-By``) gives one within BLOCK_WITHIN_S;
    after the unblock's answer, each gives the model's decision again. The probability
    is the model's throughout (the rule changes only the decision)."""
    url = scorer["url"]
    _wait_for_version(url, "1")
    session = requests.Session()
    row = scorer["rows"].iloc[0]
    body = request_body(row, transaction_id=f"blocked-card-{time.time_ns()}")
    before = _score_for(session, url, body, time.perf_counter())
    replicas = {a.replica for a in before}
    assert len(replicas) == 2, f"two replicas should answer, got {replicas}"
    assert all(r.startswith(f"{APP}#FraudScorer#") for r in replicas)
    model_says = {(a.decision, a.first_reason, a.probability) for a in before}
    assert len(model_says) == 1 and before[0].decision != "decline", model_says
    assert before[0].first_reason != "card_blocked"

    blocked = _score_for(session, url, body, _change_block(session, url, row["card_id"], "block"))
    unblocked = _score_for(
        session, url, body, _change_block(session, url, row["card_id"], "unblock")
    )

    declined = _first_by_replica(blocked)
    logger.info(
        "Block: first decline of each replica %s s after the block's answer (%d answers); "
        "unblock: the model's decision again %s s after (%d answers)",
        {r[-8:]: round(s, 3) for r, s in declined.items()},
        len(blocked),
        {r[-8:]: round(s, 3) for r, s in _first_by_replica(unblocked).items()},
        len(unblocked),
    )
    assert set(declined) == replicas, f"within {BLOCK_WITHIN_S} s only {set(declined)} answered"
    assert max(declined.values()) <= BLOCK_WITHIN_S, declined
    assert {(a.decision, a.first_reason) for a in blocked} == {("decline", "card_blocked")}
    assert set(_first_by_replica(unblocked)) == replicas
    assert {(a.decision, a.first_reason, a.probability) for a in unblocked} == model_says
    assert {a.probability for a in blocked} == {before[0].probability}
