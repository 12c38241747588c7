"""Serving: the Ray Serve scorer beside the same Scorer in a bare FastAPI + uvicorn app.

A world of 10 000 customers (35 days) is generated, its features built and a LightGBM
model trained; the online store (packed SQLite) holds the last night's snapshot. Both
servers run on 127.0.0.1 with one scoring process each and the same work per request
(online read, today's state, model, reasons, today's update). An open-loop load
generator sends requests at a fixed rate (latency measured from each request's
scheduled time) or keeps a fixed number in flight (throughput).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from benchmarks.common import ROOT, load_params, print_table, start_ray
from payments_ml.features import windows as fw
from payments_ml.features.definitions import FEATURE_DEFAULTS, FEATURES
from payments_ml.training.model import FraudModel

DELAY = 7


def build_world(root: Path, n_customers: int, n_days: int) -> dict[str, Any]:
    """Transactions, snapshots in a Feast repo (last night loaded), a trained model."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    from payments_ml.contracts import split_by_contract  # noqa: PLC0415
    from payments_ml.data_gen import generator as g  # noqa: PLC0415
    from payments_ml.feature_store import store as fs  # noqa: PLC0415
    from payments_ml.pipelines.features.nodes import snapshot_table  # noqa: PLC0415

    params = load_params("data_gen") | {"n_customers": n_customers, "n_merchants": 2000}
    tx, _ = split_by_contract(g.generate_days(g.world_of(params), dt.date(2025, 5, 1), n_days))
    tx = tx.reset_index(drop=True)
    merchant_days = fw.merchant_daily(tx, DELAY)
    rows = fw.feature_rows(tx, merchant_days, DELAY)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 31, "learning_rate": 0.05},
        lgb.Dataset(
            rows[FEATURES].to_numpy(float),
            rows["is_fraud"].to_numpy(float),
            feature_name=list(FEATURES),
        ),
        num_boost_round=200,
    )
    model = FraudModel(
        booster,
        list(FEATURES),
        dict(FEATURE_DEFAULTS),
        {"review": 0.05, "decline": 0.5},
        {"registered_version": "bench"},
    )
    model.save(root / "model")
    last = int(fw.day_of(fw.to_ns(tx["event_timestamp"])).max())
    customer_rows = fw.customer_snapshot_rows(fw.customer_daily(tx), last + 1)
    merchant_rows = fw.merchant_snapshot_rows(merchant_days, DELAY, last + 1)
    feast = {
        "project": "bench",
        "registry": str(root / "feast/registry.db"),
        "offline_store": {"type": "file"},
        "online_store": {"type": "packed_sqlite", "path": str(root / "feast/online.db")},
        "sources": {
            "customer_snapshots": str(root / "feast/customer_snapshots"),
            "merchant_snapshots": str(root / "feast/merchant_snapshots.parquet"),
            "scored_transactions": str(root / "feast/scored"),
        },
    }
    (root / "feast/customer_snapshots").mkdir(parents=True)
    pq.write_table(snapshot_table(customer_rows), root / "feast/customer_snapshots/part-0.parquet")
    merchant_rows.to_parquet(root / "feast/merchant_snapshots.parquet")
    store = fs.open_store(feast)
    store.apply(list(fs.definitions(feast).values()))
    fs.load_day(store, customer_rows, merchant_rows, pd.Timestamp(last * fw.NS_DAY, tz="UTC"))
    (root / "feast.json").write_text(json.dumps(feast))
    requests = tx[fw.day_of(fw.to_ns(tx["event_timestamp"])) == last]
    requests = requests.assign(
        event_timestamp=requests["event_timestamp"] + pd.Timedelta(days=1)
    )  # "today": the day after the snapshot
    bodies = [
        {
            "transaction_id": r.transaction_id,
            "event_timestamp": r.event_timestamp.isoformat(),
            "customer_id": int(r.customer_id),
            "card_id": int(r.card_id),
            "merchant_id": int(r.merchant_id),
            "amount": float(r.amount),
        }
        for r in requests.itertuples()
    ]
    return {"model": model, "feast": feast, "bodies": bodies, "rows": len(tx)}


async def _post(session: Any, url: str, body: dict) -> tuple[int, float]:
    start = time.perf_counter()
    async with session.post(url, json=body) as answer:
        await answer.read()
        return answer.status, time.perf_counter() - start


async def fixed_rate(url: str, bodies: list[dict], rate: float, seconds: float) -> dict:
    """Open loop: request i is due at i / rate; latency counts from its due time. Each
    request is started at its due time (not all created up front, which would make the
    client itself late for the first ones)."""
    import aiohttp  # noqa: PLC0415

    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            body = bodies[i % len(bodies)] | {"transaction_id": f"r{i}"}
            status, _ = await _post(session, url, body)
            latencies.append(time.perf_counter() - due)
            errors += status != 200

        start = time.perf_counter()
        tasks = []
        for i in range(n):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return _stats(latencies, n, elapsed, errors)


async def fixed_concurrency(
    url: str, bodies: list[dict], concurrency: int, seconds: float, batch: int = 0
) -> dict:
    """Closed loop: ``concurrency`` requests in flight; transactions/s and latency."""
    import aiohttp  # noqa: PLC0415

    latencies: list[float] = []
    errors = 0
    count = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        start = time.perf_counter()

        async def worker(w: int) -> None:
            nonlocal errors, count
            i = 0
            while time.perf_counter() - start < seconds:
                i += 1
                if batch:
                    chunk = [
                        bodies[(w * 7919 + i * batch + k) % len(bodies)]
                        | {"transaction_id": f"c{w}-{i}-{k}"}
                        for k in range(batch)
                    ]
                    status, latency = await _post(session, url, {"transactions": chunk})
                else:
                    body = bodies[(w * 7919 + i) % len(bodies)] | {"transaction_id": f"c{w}-{i}"}
                    status, latency = await _post(session, url, body)
                latencies.append(latency)
                errors += status != 200
                count += batch or 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    return _stats(latencies, count, elapsed, errors)


def _stats(latencies: list[float], transactions: int, elapsed: float, errors: int) -> dict:
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    return {"tx_per_s": transactions / elapsed, "p50": p50, "p99": p99, "errors": errors}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if json.loads(answer.read())["status"] == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy")


def measure(url: str, bodies: list[dict], quick: bool) -> dict[str, dict]:
    """The three loads against one server. The client's heap (this process built the
    world: the model, Feast, Ray's driver) is frozen first: one full collection of it
    took 0.25 s and delayed every answer in flight, a stall of the client's own that
    showed as the server's p99."""
    seconds = 5 if quick else 20
    gc.collect()
    gc.freeze()
    asyncio.run(fixed_concurrency(f"{url}/score", bodies, 4, 2))  # warm-up
    return {
        "score @100/s": asyncio.run(fixed_rate(f"{url}/score", bodies, 100, seconds)),
        "score, 8 in flight": asyncio.run(fixed_concurrency(f"{url}/score", bodies, 8, seconds)),
        "batch of 100, 2 in flight": asyncio.run(
            fixed_concurrency(f"{url}/score/batch", bodies, 2, seconds, batch=100)
        ),
    }


def main(quick: bool = False) -> None:
    from ray import serve  # noqa: PLC0415

    from payments_ml.serving.app import FraudScorer  # noqa: PLC0415

    # As `make run` serves: HAProxy ingress, direct data plane (set before Ray starts).
    os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
    os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")  # 30 s
    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    bare = None
    try:
        world = build_world(root, 2_000 if quick else 10_000, 35)
        startup = start_ray()
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        model = world["model"]
        serve.run(
            FraudScorer.options(ray_actor_options={"num_cpus": 1}).bind(
                lambda: model, world["feast"], score_log={"path": str(root / "scored")}
            ),
            name="bench",
            route_prefix="/",
        )
        ray_url = f"http://127.0.0.1:{port}"
        _wait(ray_url)
        ours = measure(ray_url, world["bodies"], quick)
        serve.shutdown()

        bare_port = _free_port()
        bare = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bare_app",
                "--port",
                str(bare_port),
                "--model",
                str(root / "model"),
                "--feast",
                str(root / "feast.json"),
                "--scored",
                str(root / "scored-bare"),
            ],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
        bare_url = f"http://127.0.0.1:{bare_port}"
        _wait(bare_url)
        theirs = measure(bare_url, world["bodies"], quick)
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(30)
        shutil.rmtree(root, ignore_errors=True)
    rows = [
        [
            load,
            ours[load]["tx_per_s"],
            ours[load]["p50"],
            ours[load]["p99"],
            theirs[load]["tx_per_s"],
            theirs[load]["p50"],
            theirs[load]["p99"],
            ours[load]["tx_per_s"] / theirs[load]["tx_per_s"],
            ours[load]["errors"] + theirs[load]["errors"],
        ]
        for load in ours
    ]
    print_table(
        f"serving: Ray Serve scorer vs bare FastAPI + uvicorn, same Scorer, {os.cpu_count()} "
        f"CPUs ({world['rows']:,} generated transactions; Ray start-up {startup:.1f} s)",
        [
            "load",
            "serve tx/s",
            "p50 ms",
            "p99 ms",
            "bare tx/s",
            "p50 ms",
            "p99 ms",
            "serve / bare",
            "errors",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
