"""Feature build: the features pipeline on Ray Data vs the same features in DuckDB SQL.

Both sides read the day-partitioned raw transactions and write the model input table
(every feature of docs/design.md, "Feature semantics", for every transaction); the two
outputs are compared before any figure is printed. Then one night
(``features.run_date``) on top of that full build: the last day's training rows, the
snapshot rows that night writes and the merchant days, from the stored state, timed
beside the full build and checked equal to its rows of that day. Then the online store:
materialization rows/s of the latest snapshots, and get_online_features latency for one
customer + one merchant.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import load_params, print_table, start_ray, timer
from payments_ml.datasets import ParquetFilesDataset, RayParquetDataset
from payments_ml.features.definitions import FEATURES
from payments_ml.pipelines.data_gen import nodes as gen
from payments_ml.pipelines.features import nodes

SIZES = {"1M": 10_000, "10M": 100_000}  # customers for 90 days at the default rates
DELAY = 7
NO_LABELS = pd.DataFrame()  # no labels feed: the transactions' own labels
NS_DAY = 86_400 * 10**9

DUCKDB_SQL = """
WITH tx AS (
    SELECT transaction_id, customer_id, card_id, merchant_id, amount, is_fraud, label_available_at,
           event_timestamp, epoch_ns(event_timestamp) AS t, epoch_ns(event_timestamp) // {day} AS day
    FROM read_parquet('{raw}/*/*.parquet', hive_partitioning = true)
),
customer_days AS (
    SELECT customer_id, day, count(*) AS n, sum(amount) AS s FROM tx GROUP BY ALL
),
customer_snapshot AS (  -- full days [D - w, D)
    SELECT customer_id, day,
        coalesce(sum(n) OVER w1, 0) AS n1, coalesce(sum(s) OVER w1, 0) AS s1,
        coalesce(sum(n) OVER w7, 0) AS n7, coalesce(sum(s) OVER w7, 0) AS s7,
        coalesce(sum(n) OVER w30, 0) AS n30, coalesce(sum(s) OVER w30, 0) AS s30
    FROM customer_days
    WINDOW w1 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN 1 PRECEDING AND 1 PRECEDING),
           w7 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN 7 PRECEDING AND 1 PRECEDING),
           w30 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN 30 PRECEDING AND 1 PRECEDING)
),
merchant_days AS (
    SELECT merchant_id, day, count(*) AS n,
           count(*) FILTER (WHERE is_fraud AND epoch_ns(label_available_at) <= (day + {d} + 1) * {day}) AS f
    FROM tx GROUP BY ALL
),
merchant_snapshot AS (  -- full days [D - d - w, D - d)
    SELECT merchant_id, day,
        coalesce(sum(n) OVER w1, 0) AS n1, coalesce(sum(f) OVER w1, 0) AS f1,
        coalesce(sum(n) OVER w7, 0) AS n7, coalesce(sum(f) OVER w7, 0) AS f7,
        coalesce(sum(n) OVER w30, 0) AS n30, coalesce(sum(f) OVER w30, 0) AS f30
    FROM merchant_days
    WINDOW w1 AS (PARTITION BY merchant_id ORDER BY day RANGE BETWEEN {d} + 1 PRECEDING AND {d} + 1 PRECEDING),
           w7 AS (PARTITION BY merchant_id ORDER BY day RANGE BETWEEN {d} + 7 PRECEDING AND {d} + 1 PRECEDING),
           w30 AS (PARTITION BY merchant_id ORDER BY day RANGE BETWEEN {d} + 30 PRECEDING AND {d} + 1 PRECEDING)
),
peers AS (  -- transactions of the same customer at the same instant never see each other
    SELECT customer_id, t, count(*) AS pn, sum(amount) AS ps FROM tx GROUP BY ALL
),
previous AS (  -- the customer's previous distinct instant
    SELECT customer_id, t, lag(t) OVER (PARTITION BY customer_id ORDER BY t) AS last_t FROM peers
),
today AS (  -- day D strictly before t: up to and with the peers, minus the peers
    SELECT tx.*, p.last_t,
        count(*) OVER td - q.pn AS tn, sum(amount) OVER td - q.ps AS ts,
        count(*) OVER (PARTITION BY customer_id ORDER BY t RANGE BETWEEN 3600000000000 PRECEDING AND CURRENT ROW) - q.pn AS n1h
    FROM tx JOIN peers q USING (customer_id, t) JOIN previous p USING (customer_id, t)
    WINDOW td AS (PARTITION BY customer_id, day ORDER BY t RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT x.transaction_id, x.event_timestamp, x.customer_id, x.card_id, x.merchant_id, x.amount,
    x.is_fraud, x.label_available_at,
    c.n1 + x.tn AS customer_tx_count_1d, (c.s1 + x.ts) / nullif(c.n1 + x.tn, 0) AS customer_amount_avg_1d,
    c.s1 + x.ts AS customer_amount_sum_1d,
    c.n7 + x.tn AS customer_tx_count_7d, (c.s7 + x.ts) / nullif(c.n7 + x.tn, 0) AS customer_amount_avg_7d,
    c.s7 + x.ts AS customer_amount_sum_7d,
    c.n30 + x.tn AS customer_tx_count_30d, (c.s30 + x.ts) / nullif(c.n30 + x.tn, 0) AS customer_amount_avg_30d,
    c.s30 + x.ts AS customer_amount_sum_30d,
    x.n1h AS customer_tx_count_1h, (x.t - x.last_t) / 1e9 AS seconds_since_last_customer_tx,
    m.n1 AS merchant_tx_count_1d, coalesce(m.f1 / nullif(m.n1, 0), 0) AS merchant_fraud_rate_1d,
    m.n7 AS merchant_tx_count_7d, coalesce(m.f7 / nullif(m.n7, 0), 0) AS merchant_fraud_rate_7d,
    m.n30 AS merchant_tx_count_30d, coalesce(m.f30 / nullif(m.n30, 0), 0) AS merchant_fraud_rate_30d,
    x.amount / ((c.s30 + x.ts) / nullif(c.n30 + x.tn, 0)) AS amount_to_customer_avg_30d,
    hour(x.event_timestamp AT TIME ZONE 'UTC') AS hour_of_day,
    isodow(x.event_timestamp AT TIME ZONE 'UTC') >= 6 AS is_weekend,
    hour(x.event_timestamp AT TIME ZONE 'UTC') < 6 AS is_night
FROM today x
JOIN customer_snapshot c USING (customer_id, day)
JOIN merchant_snapshot m USING (merchant_id, day)
"""


def generate_raw(n_customers: int, out: Path) -> int:
    params = load_params("data_gen") | {
        "n_customers": n_customers,
        "n_merchants": max(200, n_customers // 5),
    }
    customers = gen.build_customers(params)
    valid, _, _, summary = gen.generate_transactions(
        customers, gen.build_cards(customers, params), gen.build_merchants(params), None, params
    )
    RayParquetDataset(filepath=str(out), partition_cols=["event_date"]).save(valid)
    return summary["valid"]


def run_ray(raw: Path, out: Path) -> tuple[Any, Any, pd.DataFrame]:
    """The full build's nodes, in the order `kedro run --pipelines features` runs them
    (each node's outputs saved before the next node)."""
    params = {"label_delay_days": DELAY, "partitions": None}
    files = ParquetFilesDataset(filepath=str(raw)).load()  # what the catalog's view opens
    by_customer = nodes.partition_by_customer(None, files, None, params)
    merchant_days = nodes.aggregate_merchant_days(by_customer, None, NO_LABELS, params)
    training_set, customer_snapshots = nodes.build_customer_features(
        by_customer, merchant_days, params
    )
    RayParquetDataset(filepath=str(out), partition_cols=["event_date"]).save(training_set)
    merchant_snapshots = nodes.build_merchant_snapshots(merchant_days, params)
    return merchant_snapshots, customer_snapshots, merchant_days


def run_night(raw: Path, state: Path, night: str) -> None:
    """The night of ``night`` as `kedro run --pipelines features --params
    features.run_date=...` runs it (without the online store): the catalog's datasets of
    the night, over the state a full build stored under ``state``."""
    params = {"label_delay_days": DELAY, "partitions": None, "run_date": night}
    files = ParquetFilesDataset(filepath=str(raw)).load()
    stored = ParquetFilesDataset(filepath=str(state / "merchant_days.parquet"), partitioning=None)
    by_customer = nodes.partition_by_customer(None, files, stored.load(), params)
    merchant_days = nodes.aggregate_merchant_days(by_customer, stored.load(), NO_LABELS, params)
    training_set, customer_snapshots = nodes.build_customer_features(
        by_customer, merchant_days, params
    )
    merchant_snapshots = nodes.build_merchant_snapshots(merchant_days, params)
    for name, column, data in (
        ("training_set", "event_date", training_set),
        ("customer_snapshots", "run_date", customer_snapshots),
        ("merchant_snapshots", "run_date", merchant_snapshots),
    ):
        RayParquetDataset(
            filepath=str(state / name), partition_cols=[column], replace_from=night
        ).save(data)
    merchant_days.to_parquet(state / "merchant_days.parquet")


def store_state(root: Path, ray_out: Path, merchant_days: pd.DataFrame, snapshots: Any) -> Path:
    """What a full `kedro run --pipelines features` leaves for the next night."""
    state = root / "state"
    state.mkdir()
    shutil.copytree(ray_out, state / "training_set")
    merchant_days.to_parquet(state / "merchant_days.parquet")
    for name, data in zip(("merchant_snapshots", "customer_snapshots"), snapshots, strict=True):
        RayParquetDataset(filepath=str(state / name), partition_cols=["run_date"]).save(data)
    return state


def same_night(state: Path, ray_out: Path, night: str) -> tuple[int, float]:
    """The night's training rows equal the full build's rows of that day (floats to 1e-9)."""
    ours = pd.read_parquet(state / "training_set" / f"event_date={night}")
    full = pd.read_parquet(ray_out / f"event_date={night}")
    ours, full = (f.sort_values("transaction_id", ignore_index=True) for f in (ours, full))
    assert ours["transaction_id"].equals(full["transaction_id"]), "the night's rows differ"
    a, b = ours[FEATURES].astype(float).to_numpy(), full[FEATURES].astype(float).to_numpy()
    assert np.allclose(a, b, rtol=1e-9, atol=0, equal_nan=True), "the night's features differ"
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(a == b, 0.0, np.abs(a - b) / np.maximum(np.abs(a), np.abs(b)))
    return len(ours), float(np.nanmax(relative)) if relative.size else 0.0


def run_duckdb(raw: Path, out: Path) -> None:
    import duckdb  # noqa: PLC0415

    query = DUCKDB_SQL.format(raw=raw, day=NS_DAY, d=DELAY)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet)")


def compare(ray_out: Path, duck_out: Path, sample: int = 20_000) -> int:
    """Both sides computed the same numbers (a sample, compared to 1e-9)."""
    ours = pd.read_parquet(ray_out).set_index("transaction_id").sort_index()
    theirs = pd.read_parquet(duck_out).set_index("transaction_id").sort_index()
    assert ours.index.equals(theirs.index), "the two sides produced different transactions"
    rows = ours.index[
        np.random.default_rng(0).choice(len(ours), min(sample, len(ours)), replace=False)
    ]
    a, b = ours.loc[rows, FEATURES].astype(float), theirs.loc[rows, FEATURES].astype(float)
    close = np.isclose(a.to_numpy(), b.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
    assert close.all(), f"features differ: {a.columns[~close.all(axis=0)].tolist()}"
    return len(ours)


STORES = {"packed_sqlite": "packed SQLite (ours)", "sqlite": "Feast SQLite"}


def online(
    customer_snapshots: Any, merchant_snapshots: pd.DataFrame, root: Path
) -> list[list[Any]]:
    """Materialization rows/s and read latency: our packed SQLite store beside Feast's own."""
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    results = {}
    for store_type in STORES:
        config = {
            "project": "bench",
            "registry": str(root / store_type / "registry.db"),
            "online_store": {"type": store_type, "path": str(root / store_type / "online.db")},
            "sources": {
                "customer_snapshots": str(root / "c"),
                "merchant_snapshots": str(root / "m.parquet"),
                "scored_transactions": str(root / "scored"),
            },
        }
        store = fs.open_store(config)
        store.apply(list(fs.definitions(config).values()))
        report = nodes.materialize_online(
            config, customer_snapshots, merchant_snapshots, applied={}
        )
        results[store_type] = {
            view: (report[view]["rows"], report[view]["rows_per_s"])
            for view in ("customer_snapshot", "merchant_snapshot")
        }
        results[store_type]["read"] = read_latency(store)
    ours, feast = results["packed_sqlite"], results["sqlite"]
    rows = [
        [view, ours[view][0], ours[view][1], feast[view][1], ours[view][1] / feast[view][1]]
        for view in ("customer_snapshot", "merchant_snapshot")
    ]
    for i, label in enumerate(("p50", "p99")):
        rows.append(
            [
                f"get_online_features {label} ms",
                "",
                round(ours["read"][i], 3),
                round(feast["read"][i], 3),
                feast["read"][i] / ours["read"][i],
            ]
        )
    return rows


def read_latency(store: Any, calls: int = 1000) -> tuple[float, float]:
    """p50 and p99 ms of get_online_features for one customer + one merchant."""
    names = [
        f"{view}:{f.name}"
        for view in ("customer_snapshot", "merchant_snapshot")
        for f in store.get_feature_view(view).features
    ]
    store.get_online_features(features=names, entity_rows=[{"customer_id": 1, "merchant_id": 1}])
    latencies = []
    for i in range(calls):
        start = time.perf_counter()
        store.get_online_features(
            features=names,
            entity_rows=[{"customer_id": 1 + i % 1000, "merchant_id": 700_001 + i % 200}],
        ).to_dict()
        latencies.append(time.perf_counter() - start)
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    return float(p50), float(p99)


def main(quick: bool = False) -> None:
    startup = start_ray()
    build_rows, night_rows, online_rows = [], [], []
    sizes = {"100k": 1_000} if quick else SIZES
    for label, n_customers in sizes.items():
        root = Path(tempfile.mkdtemp(prefix="bench-features-"))
        try:
            n = generate_raw(n_customers, root / "raw")
            with timer() as ray_t:
                merchant_snapshots, customer_snapshots, merchant_days = run_ray(
                    root / "raw", root / "ray"
                )
            with timer() as duck_t:
                run_duckdb(root / "raw", root / "duck.parquet")
            assert compare(root / "ray", root / "duck.parquet") == n
            build_rows.append(
                [
                    label,
                    n,
                    ray_t["seconds"],
                    duck_t["seconds"],
                    ray_t["seconds"] / duck_t["seconds"],
                ]
            )
            state = store_state(
                root, root / "ray", merchant_days, (merchant_snapshots, customer_snapshots)
            )
            night = max(
                p.name.removeprefix("event_date=") for p in (root / "raw").glob("event_date=*")
            )
            with timer() as night_t:
                run_night(root / "raw", state, night)
            rows, difference = same_night(state, root / "ray", night)
            night_rows.append(
                [
                    label,
                    n,
                    rows,
                    f"{difference:.1e}",
                    ray_t["seconds"],
                    night_t["seconds"],
                    ray_t["seconds"] / night_t["seconds"],
                ]
            )
            for row in online(customer_snapshots, merchant_snapshots, root / "feast"):
                online_rows.append([label, *row])
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print_table(
        f"features: model input for every transaction, {os.cpu_count()} CPUs "
        f"(Ray start-up {startup:.1f} s, not included; outputs compared equal)",
        ["size", "rows", "ray s", "duckdb s", "ray / duckdb"],
        build_rows,
    )
    print_table(
        "one night (features.run_date = the last day) over the stored state of that full "
        "build: training rows, snapshots, merchant days (rows of the night compared equal)",
        [
            "size",
            "history rows",
            "night rows",
            "max rel. diff",
            "full build s",
            "night s",
            "full / night",
        ],
        night_rows,
    )
    print_table(
        "online store: materialization of the latest snapshots (rows/s), and reads (ms)",
        ["size", "what", "rows", "packed SQLite", "Feast SQLite", "speed-up"],
        online_rows,
    )


if __name__ == "__main__":
    main()
