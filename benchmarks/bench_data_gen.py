"""Generation throughput: the data_gen nodes on Ray vs the same generator in one process.

Both sides do the same work: build the catalogues, generate every day, check it against
the pandera contract, and write valid and quarantined rows as day-partitioned Parquet.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import load_params, print_table, start_ray, timer
from payments_ml.contracts import split_table_by_contract
from payments_ml.data_gen.generator import World, generate_day_table
from payments_ml.datasets import RayParquetDataset
from payments_ml.pipelines.data_gen import nodes

SIZES = {"1M": 10_000, "10M": 100_000}  # customers for 90 days at the default rates


def run_ray(params: dict[str, Any], out: Path) -> int:
    customers = nodes.build_customers(params)
    cards, merchants = nodes.build_cards(customers, params), nodes.build_merchants(params)
    valid, quarantine, _, summary = nodes.generate_transactions(
        customers, cards, merchants, None, params
    )
    RayParquetDataset(filepath=str(out / "valid"), partition_cols=["event_date"]).save(valid)
    RayParquetDataset(filepath=str(out / "quarantine"), partition_cols=["event_date"]).save(
        quarantine
    )
    return summary["transactions"]


def run_single_process(params: dict[str, Any], out: Path) -> int:
    customers = nodes.build_customers(params)
    cards, merchants = nodes.build_cards(customers, params), nodes.build_merchants(params)
    world = World.from_catalogues(customers, cards, merchants, params)
    total = 0
    for day in nodes.generation_days(params):
        table = generate_day_table(world, day)
        valid, quarantine = split_table_by_contract(table)
        for name, part in (("valid", valid), ("quarantine", quarantine)):
            folder = out / name / f"event_date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            _write(part.drop_columns("event_date"), folder / "part-0.parquet")
        total += table.num_rows
    return total


def _write(table: pa.Table, path: Path) -> None:
    # Dictionary pages for string columns only, as the Ray side's writer does (pyarrow's
    # default tries one for every column: 49 ms against 31 ms for a 116 k-row day).
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    pq.write_table(table, path, use_dictionary=strings)


def main(quick: bool = False) -> None:
    startup = start_ray()
    rows = []
    sizes = {"100k": 1_000} if quick else SIZES
    for label, n_customers in sizes.items():
        params = load_params("data_gen") | {
            "n_customers": n_customers,
            "n_merchants": max(200, n_customers // 5),
        }
        results = {}
        # Ray first, then the single process, twice: the first run pays the workers'
        # imports (the single process imported everything with this module).
        for run in ("first", "warm"):
            for name, fn in (("ray", run_ray), ("single", run_single_process)):
                out = Path(tempfile.mkdtemp(prefix=f"bench-data-gen-{name}-"))
                try:
                    with timer() as t:
                        n = fn(params, out)
                    results[name, run] = (n, t["seconds"])
                finally:
                    shutil.rmtree(out, ignore_errors=True)
            (n, ray_s), (n_single, single_s) = results["ray", run], results["single", run]
            assert n == n_single, f"the two sides generated {n} and {n_single} rows"
            rows.append([label, run, n, ray_s, n / ray_s, single_s, n / single_s, single_s / ray_s])
    print_table(
        f"data_gen: generate + validate + write Parquet, {os.cpu_count()} CPUs "
        f"(Ray start-up {startup:.1f} s, not included) {dt.date.today()}",
        ["size", "run", "rows", "ray s", "ray rows/s", "single s", "single rows/s", "speed-up"],
        rows,
    )


if __name__ == "__main__":
    main()
