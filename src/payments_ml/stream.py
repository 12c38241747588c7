"""Replay a generated day against the scorer: python -m payments_ml.stream --day D.

Loads the nightly snapshot of day D into the online store (what that night's refresh
served; the latest snapshot is put back at the end), then sends D's transactions in time
order at --rate requests/s to /score, with a progress bar and a summary: sent, ok,
errors, latency percentiles, decisions, frauds caught. --check compares the features the
scorer used with training_set. --sample scores one transaction and prints the answer.
Paths (raw_transactions, training_set, the Feast store) come from the project's
configuration in --env, as 'kedro run --env' reads them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from payments_ml.features.definitions import FEATURES, KEY_COLUMNS
from payments_ml.structured_logging import filter_library_deprecations

logger = logging.getLogger(__name__)

REQUEST_COLUMNS = KEY_COLUMNS  # the contract's columns without the labels


def generated_days(raw: Path) -> list[str]:
    """The days with a partition under ``raw`` (raw_transactions), in order."""
    return sorted(p.name.removeprefix("event_date=") for p in raw.glob("event_date=*"))


def day_transactions(day: str, raw: Path) -> pd.DataFrame:
    """The day's transactions in time order (with their labels, kept for the summary)."""
    partition = raw / f"event_date={day}"
    if not partition.exists():
        days = generated_days(raw)
        raise SystemExit(
            f"no transactions for {day} under {raw}; generated days: "
            f"{days[0] + '..' + days[-1] if days else 'none (run `make run` first)'}"
        )
    rows = pd.read_parquet(partition)
    return rows.sort_values(["event_timestamp", "transaction_id"], ignore_index=True)


def prepare_day(day: str | None, feast: dict[str, Any]) -> dict[str, int]:
    """Load the nightly snapshot of ``day`` (None: the latest) into the online store of
    ``feast`` (the project's Feast settings, `project_settings(...)["feast"]`)."""
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    store = fs.open_store(feast)
    customers = pd.read_parquet(feast["sources"]["customer_snapshots"])
    merchants = pd.read_parquet(feast["sources"]["merchant_snapshots"])
    midnight = pd.Timestamp(day, tz="UTC") if day else customers["snapshot_ts"].max()
    if day:  # the replayed day starts empty: no running state left by another replay
        fs.clear_view(store, "customer_today")
    return fs.load_day(store, customers, merchants, midnight)


def replay(
    url: str, rows: pd.DataFrame, rate: float, workers: int = 32, progress: bool = True
) -> pd.DataFrame:
    """POST every row to ``url``/score at ``rate`` per second; one answer row per request."""
    from tqdm import tqdm  # noqa: PLC0415

    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=workers))
    bodies = _bodies(rows)
    answers: list[dict[str, Any]] = [{} for _ in bodies]
    # disable=None: a bar on a terminal only (in a pipe it is one long line of redraws)
    bar = tqdm(total=len(bodies), unit="tx", disable=None if progress else True, desc="replay")
    lock = threading.Lock()
    # A card's next authorisation follows the answer to its previous one: a customer's
    # request waits for their previous request's answer (as in the training order).
    done = [threading.Event() for _ in bodies]
    previous: dict[int, int] = {}
    waits_for = []
    for i, body in enumerate(bodies):
        waits_for.append(previous.get(body["customer_id"]))
        previous[body["customer_id"]] = i
    start = time.perf_counter()

    def send(i: int) -> None:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if waits_for[i] is not None:
            done[waits_for[i]].wait(timeout=60)
        sent = time.perf_counter()
        try:
            answer = session.post(f"{url}/score", json=bodies[i], timeout=30)
            status = answer.status_code
            body = answer.json() if status == 200 else {"error": answer.text[:300]}
        except requests.RequestException as error:
            status, body = 0, {"error": str(error)}
        answers[i] = {"status": status, "latency_ms": (time.perf_counter() - sent) * 1000, **body}
        done[i].set()
        with lock:
            bar.update(1)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(send, range(len(bodies))))
    bar.close()
    return pd.DataFrame(answers)


def summarize(rows: pd.DataFrame, answers: pd.DataFrame, seconds: float) -> dict[str, Any]:
    """Sent, ok, errors, latency percentiles, decisions and frauds caught."""
    ok = answers["status"] == 200
    latency = answers.loc[ok, "latency_ms"].to_numpy()
    decisions = answers.loc[ok, "decision"].value_counts().to_dict() if ok.any() else {}
    flagged = ok & answers.get("decision", pd.Series(index=answers.index)).isin(
        ["review", "decline"]
    )
    frauds = rows["is_fraud"].to_numpy(bool)
    return {
        "sent": len(answers),
        "ok": int(ok.sum()),
        "errors": answers.loc[~ok, "status"].value_counts().to_dict(),
        "seconds": round(seconds, 2),
        "rate_per_s": round(len(answers) / seconds, 1) if seconds else None,
        "latency_ms": {
            f"p{q}": round(float(np.percentile(latency, q)), 2) if len(latency) else None
            for q in (50, 95, 99)
        },
        "decisions": decisions,
        "frauds": int(frauds.sum()),
        "frauds_caught": int((flagged.to_numpy() & frauds).sum()),
    }


def check_features(answers: pd.DataFrame, training_set: Path) -> dict[str, Any]:
    """Features the scorer used against training_set: mismatches per feature."""
    ok = answers[answers["status"] == 200]
    served = pd.DataFrame(list(ok["features_used"]), index=ok["transaction_id"])[FEATURES]
    expected = pd.read_parquet(
        training_set,
        columns=["transaction_id", *FEATURES],
        filters=[("transaction_id", "in", list(served.index))],
    ).set_index("transaction_id")
    expected = expected.loc[served.index, FEATURES]
    same = np.isclose(
        served.astype(float).to_numpy(),
        expected.astype(float).to_numpy(),
        rtol=1e-9,
        equal_nan=True,
    )
    per_feature = {f: int(n) for f, n in zip(FEATURES, (~same).sum(axis=0)) if n}
    return {
        "compared": len(served),
        "rows_with_mismatch": int((~same.all(axis=1)).sum()),
        "mismatches_per_feature": per_feature,
    }


def _bodies(rows: pd.DataFrame) -> list[dict[str, Any]]:
    frame = rows[REQUEST_COLUMNS].copy()
    frame["event_timestamp"] = frame["event_timestamp"].map(lambda t: t.isoformat())
    return frame.to_dict(orient="records")


def scorer_answers(url: str, timeout_s: float = 5.0) -> None:
    """Stop with one line when nothing answers at ``url`` (before the online store is
    touched); any HTTP answer, a 503 of a degraded scorer included, is an answer."""
    try:
        requests.get(f"{url}/health", timeout=timeout_s)
    except requests.RequestException as error:
        reason = type(error).__name__
        raise SystemExit(
            f"The scorer is not answering at {url} ({reason}): start it with `make run` "
            "(or `make serve`), or point --url at it."
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m payments_ml.stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--day", help="YYYY-MM-DD, a generated day (default: the last one)")
    parser.add_argument(
        "--rate", type=float, default=50.0, help="requests per second (default: %(default)s)"
    )
    parser.add_argument("--limit", type=int, help="send only the first N transactions")
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000", help="the scorer (default: %(default)s)"
    )
    parser.add_argument("--env", default="base", help="Kedro environment (default: base)")
    parser.add_argument("--project-path", default=".", help="the project (default: .)")
    parser.add_argument("--no-prepare", action="store_true", help="keep the online store as is")
    parser.add_argument("--check", action="store_true", help="compare features to training_set")
    parser.add_argument("--sample", action="store_true", help="score one transaction, print it")
    args = parser.parse_args(argv)
    # This tool's lines; the libraries' only from WARNING (Feast's registry refreshes are INFO).
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("payments_ml").setLevel(logging.INFO)
    filter_library_deprecations()
    from payments_ml.config import project_settings  # noqa: PLC0415

    scorer_answers(args.url)
    settings = project_settings(args.project_path, args.env)
    raw = Path(settings["datasets"]["raw_transactions"])
    days = generated_days(raw)
    if not args.day and not days:
        raise SystemExit(f"no generated days under {raw}: run `make run` first")
    day = args.day or days[-1]
    rows = day_transactions(day, raw)
    if args.sample:
        # The online store serves the night after the last generated day: score a
        # transaction of that day's first customer, dated the next day at the same time.
        sample = rows.iloc[[0]].assign(
            transaction_id=f"sample-{rows['transaction_id'].iloc[0]}",
            event_timestamp=rows["event_timestamp"].iloc[0] + pd.Timedelta(days=1),
        )
        answer = requests.post(f"{args.url}/score", json=_bodies(sample)[0], timeout=30)
        print(json.dumps(answer.json(), indent=2))  # noqa: T201
        return 0 if answer.ok else 1
    if not args.no_prepare:
        written = prepare_day(day, settings["feast"])
        logger.info("Online store: nightly snapshot of %s loaded (%s)", day, written)
    rows = rows.head(args.limit) if args.limit else rows
    start = time.perf_counter()
    answers = replay(args.url, rows, args.rate)
    summary = summarize(rows, answers, time.perf_counter() - start)
    if args.check:
        training_set = Path(settings["datasets"]["training_set"])
        summary["consistency"] = check_features(answers, training_set)
    if not args.no_prepare:
        prepare_day(None, settings["feast"])
        logger.info("Online store: the latest nightly snapshot is back")
    print(json.dumps({"day": day, **summary}, indent=2))  # noqa: T201
    return 0 if summary["ok"] == summary["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
