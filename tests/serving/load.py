"""Load and faults for the scorer tests: an open-loop sender, replica processes, the log."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import requests


def request_body(row: pd.Series, **change: Any) -> dict[str, Any]:
    """The /score body of a transaction row (``change``: fields to replace)."""
    body = {
        "transaction_id": row["transaction_id"],
        "event_timestamp": row["event_timestamp"].isoformat(),
        "customer_id": int(row["customer_id"]),
        "card_id": int(row["card_id"]),
        "merchant_id": int(row["merchant_id"]),
        "amount": float(row["amount"]),
    }
    return body | change


@dataclass(frozen=True)
class Outcome:
    """One request of a load run."""

    transaction_id: str
    sent_s: float  # since the start of the run
    seconds: float  # until the answer (or the error)
    status: int  # 0: no answer (connection error or client timeout)
    retry_after: str | None
    model_version: str | None = None  # of a 200 answer


def steady_load(
    url: str,
    bodies: list[dict[str, Any]],
    rate: float,
    *,
    timeout_s: float = 5.0,
    at: dict[float, Callable[[], None]] | None = None,
    workers: int = 32,
) -> list[Outcome]:
    """POST each body to ``url``/score at ``rate`` per second (open loop: a slow answer
    does not delay the next request); ``at`` runs actions at given seconds of the run."""
    start = time.perf_counter()
    local = threading.local()
    actions = sorted((at or {}).items())

    def act() -> None:
        for second, action in actions:
            delay = start + second - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            action()

    def send(i: int) -> Outcome:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        sent = time.perf_counter()
        version = None
        try:
            answer = session.post(f"{url}/score", json=bodies[i], timeout=timeout_s)
            status, retry = answer.status_code, answer.headers.get("Retry-After")
            if status == 200:
                version = answer.json()["model_version"]
        except requests.RequestException:
            status, retry = 0, None
            local.session = None  # a broken connection is not reused
        done = time.perf_counter()
        tx_id = bodies[i]["transaction_id"]
        return Outcome(tx_id, sent - start, done - sent, status, retry, version)

    actor = threading.Thread(target=act, daemon=True)
    actor.start()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(send, range(len(bodies))))
    actor.join()
    return outcomes


def replica_pids(app_name: str) -> list[int]:
    """The process ids of an application's live FraudScorer replicas (Ray titles each
    actor process ``ray::ServeReplica:<app>:<deployment>``; no dashboard needed)."""
    import psutil  # noqa: PLC0415 (a Ray dependency)

    title = f"ray::ServeReplica:{app_name}:FraudScorer"
    pids = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0].startswith(title):
            pids.append(process.pid)
    return pids


def kill_replica(app_name: str) -> Callable[[], None]:
    """An action that SIGKILLs one of the application's replicas."""

    def kill() -> None:
        os.kill(replica_pids(app_name)[0], signal.SIGKILL)

    return kill


def scored_log(path: Path) -> pd.DataFrame:
    """The scorer's Parquet log (hidden files, written half-way, are not part of it)."""
    import pyarrow.dataset as ds  # noqa: PLC0415

    if not path.exists():
        return pd.DataFrame({"transaction_id": []})
    return ds.dataset(path, partitioning="hive").to_table().to_pandas()


def wait_for_log(path: Path, ids: set[str], timeout_s: float = 90) -> pd.DataFrame:
    """The log once it holds every id of ``ids`` (or when the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        log = scored_log(path)
        if ids <= set(log["transaction_id"]) or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


def replay_day(url: str, rows: pd.DataFrame, stop: threading.Event, id_prefix: str) -> None:
    """``rows`` to ``url``/score, about 20 per second, ten times over under new ids
    (``id_prefix``-N), until ``stop`` is set: a live day for the pages to show."""
    with requests.Session() as session:
        for i in range(len(rows) * 10):
            if stop.is_set():
                return
            body = request_body(rows.iloc[i % len(rows)]) | {"transaction_id": f"{id_prefix}-{i}"}
            session.post(f"{url}/score", json=body, timeout=30)
            time.sleep(0.05)
