"""Monitoring: the per-day data-quality node on Ray Data vs the same reduction in one process.

A generated world (the data_gen generator, 90 days at the default rates: about 1 M
transactions for 10 000 customers) is split by the contract and written as
day-partitioned Parquet the way the catalog writes ``raw_transactions`` and
``transactions_quarantine`` (one file per day, ``event_date=...`` folders,
``_schema.parquet``). Both sides compute the day table of ``data_quality.parquet`` with
the same functions of :mod:`payments_ml.monitoring.quality`:

- Ray: ``measure_data_quality`` as ``kedro run`` runs it: the two ``RayParquetDataset``
  loads, then Ray Data ``map_batches`` of :func:`day_partials` per block (one
  execution per dataset), :func:`combine_partials`, :func:`daily_quality` and
  :func:`apply_late_rows` in the driver. On a fresh local cluster: first run (workers'
  imports) and warm runs.
- Single process: one ``pyarrow.dataset`` read of the contract columns per dataset,
  :func:`day_partials` over the whole table, then the same three functions.

Both day tables are compared (to 1e-9) with each other and with counts taken directly
from the generated frames (rows arrived and quarantined, duplicates, null counts, fraud
rate) before any figure prints.

The drift node is not measured: it reads ``training_set@pandas`` and computes numpy PSI
in the driver (no Ray), so it already is its own single-process baseline, and it is
light: 0.55 s on the 1 M-row training set (about 490 k reference rows and 82 k recent
rows, 21 features), against 4.3 s to build that training set for the benchmark.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq
import ray

from benchmarks.common import load_params, print_table, start_ray, timer
from payments_ml.contracts import split_by_contract, to_arrow
from payments_ml.data_gen import generator as g
from payments_ml.datasets import ParquetFilesDataset, RayParquetDataset
from payments_ml.datasets.parquet_writes import write_parquet_block
from payments_ml.monitoring import quality as qu
from payments_ml.pipelines.monitoring import nodes

SIZES = {"1M": 10_000, "10M": 100_000}  # customers over data_gen's 90 days at the default rates
WARM_RUNS = 3
_HIVE = pa_ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive")


def generate(n_customers: int, root: Path) -> tuple[dict[str, Path], pd.DataFrame]:
    """Write the valid and quarantined rows as the catalog does; expected per-day counts."""
    params = load_params("data_gen") | {
        "n_customers": n_customers,
        "n_merchants": max(200, n_customers // 5),
    }
    world = g.world_of(params)
    start = dt.date.fromisoformat(params["start_date"])
    folders = {"raw": root / "transactions", "quarantine": root / "transactions_quarantine"}
    schemas: dict[str, pa.Schema] = {}
    expected = []
    as_of = pd.Timestamp(nightly_moment(start + dt.timedelta(days=int(params["n_days"]) - 1)))
    for i in range(int(params["n_days"])):
        valid, quarantine = split_by_contract(g.generate_day(world, start + dt.timedelta(days=i)))
        expected.append(_expected_counts(valid, quarantine, as_of))
        for name, frame in (("raw", valid), ("quarantine", quarantine)):
            table = to_arrow(frame)
            schemas.setdefault(name, table.schema)
            # RayParquetDataset's own block writer: one file per day block, Hive folders.
            write_parquet_block(table, folders[name].as_posix(), ["event_date"], f"part-{i:05d}")
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(schemas[name].empty_table(), folder / "_schema.parquet")
    return folders, pd.concat(expected, ignore_index=True)


def nightly_moment(last: dt.date) -> str:
    """The run after the last day (06:00 UTC the next day): what the day table is as of."""
    return f"{last + dt.timedelta(days=1)}T06:00:00Z"


def _expected_counts(
    valid: pd.DataFrame, quarantine: pd.DataFrame, as_of: pd.Timestamp
) -> pd.DataFrame:
    """Per day, counted directly on the generated rows (not with the monitoring code); a
    fraud counts once its label is available by ``as_of``."""
    arrived = pd.concat([valid, quarantine], ignore_index=True)
    by_day = arrived.groupby("event_date")
    counts = pd.DataFrame(
        {
            "rows_arrived": by_day.size(),
            "rows_quarantined": quarantine.groupby("event_date").size(),
            "duplicate_rows": arrived["transaction_id"]
            .duplicated()
            .groupby(arrived["event_date"])
            .sum(),
            "frauds": (valid["is_fraud"] & (valid["label_available_at"] <= as_of))
            .groupby(valid["event_date"])
            .sum(),
            "valid": valid.groupby("event_date").size(),
        }
    ).fillna(0)
    for column in qu.CONTRACT_COLUMNS:
        counts[f"nulls_{column}"] = arrived[column].isna().groupby(arrived["event_date"]).sum()
    return counts.rename_axis("event_date").reset_index()


def run_ray(folders: dict[str, Path], params: dict[str, Any]) -> pd.DataFrame:
    """The node with its four catalog loads, as `kedro run` runs it (first run: no state)."""
    raw = RayParquetDataset(filepath=str(folders["raw"]), partition_cols=["event_date"])
    quarantine = RayParquetDataset(
        filepath=str(folders["quarantine"]), partition_cols=["event_date"]
    )
    files = {
        name: ParquetFilesDataset(filepath=str(folders[folder])).load()
        for name, folder in (("raw_files", "raw"), ("quarantine_files", "quarantine"))
    }
    daily, _ = nodes.measure_data_quality(
        raw.load(), quarantine.load(), {}, pd.DataFrame(), params, **files
    )
    return daily


def run_single_process(folders: dict[str, Path], params: dict[str, Any]) -> pd.DataFrame:
    """One pyarrow read of the contract columns per dataset, the same reduction in-process."""
    as_of = nodes.run_moment(params)
    quality = params["quality"]
    edges = qu.amount_edges(quality["amount_histogram"])
    partials = []
    for name, quarantined in (("raw", False), ("quarantine", True)):
        table = pa_ds.dataset(folders[name], format="parquet", partitioning=_HIVE).to_table(
            columns=[*qu.CONTRACT_COLUMNS, "event_date"]
        )
        partials.append(
            qu.day_partials(
                table,
                quarantined=quarantined,
                edges=edges,
                as_of_ns=int(pd.Timestamp(as_of).value),
            )
        )
    days = qu.combine_partials(partials, len(edges) + 1)
    daily = qu.daily_quality(days, edges, as_of, quality)
    daily, _ = qu.apply_late_rows(daily, {}, as_of)
    return daily


def check_same(ours: pd.DataFrame, single: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Both day tables are equal, and agree with the counts taken on the generated rows."""
    pd.testing.assert_frame_equal(ours, single, check_exact=False, rtol=1e-9)
    want = expected.set_index("event_date")
    have = ours.set_index("event_date")
    assert have.index.equals(want.index), "the day tables cover other days than generated"
    for column in ("rows_arrived", "rows_quarantined", "duplicate_rows"):
        assert (have[column] == want[column]).all(), f"{column} differs from the generated rows"
    arrived = want["rows_arrived"]
    for column in qu.CONTRACT_COLUMNS:
        np.testing.assert_allclose(
            have[f"null_rate_{column}"], want[f"nulls_{column}"] / arrived, rtol=1e-12
        )
    np.testing.assert_allclose(have["fraud_rate"], want["frauds"] / want["valid"], rtol=1e-12)


def _timed_runs(run: Any, *args: Any) -> tuple[float, list[float], pd.DataFrame]:
    """First run, then WARM_RUNS more: (first s, warm s, the last day table)."""
    seconds = []
    for _ in range(1 + WARM_RUNS):
        with timer() as t:
            daily = run(*args)
        seconds.append(t["seconds"])
    return seconds[0], seconds[1:], daily


def main(quick: bool = False) -> None:
    sizes = {"100k": 1_000} if quick else SIZES
    startup = None
    table, notes = [], []
    try:
        for label, n_customers in sizes.items():
            root = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
            try:
                with timer() as gen_t:
                    folders, expected = generate(n_customers, root)
                rows = int(expected["rows_arrived"].sum())
                quarantined = int(expected["rows_quarantined"].sum())
                notes.append(
                    f"{label}: {rows:,} rows ({quarantined} quarantined) over "
                    f"{len(expected)} days, generated in {gen_t['seconds']:.0f} s"
                )
                last = dt.date.fromisoformat(expected["event_date"].max())
                # The nightly run after the last day: the day table is the same on both sides.
                as_of = nightly_moment(last)
                params = load_params("monitoring") | {"as_of": as_of}
                single = _timed_runs(run_single_process, folders, params)
                if startup is None:  # after the baseline: no idle Ray processes beside it
                    startup = start_ray()
                ours = _timed_runs(run_ray, folders, params)
                check_same(ours[2], single[2], expected)
                single_s = statistics.median(single[1])
                for side, (first, warm, _) in (("single process", single), ("ray", ours)):
                    for run, seconds, spread in (
                        ("first", first, ""),
                        (
                            f"warm (median of {WARM_RUNS})",
                            statistics.median(warm),
                            f"{min(warm):.2f}-{max(warm):.2f}",
                        ),
                    ):
                        table.append(
                            [
                                label,
                                side,
                                run,
                                rows,
                                seconds,
                                spread,
                                rows / seconds,
                                single_s / seconds,
                            ]
                        )
            finally:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        ray.shutdown()
    print_table(
        f"monitoring: per-day data quality of raw + quarantined transactions "
        f"({'; '.join(notes)}), {os.cpu_count()} CPUs (Ray start-up {startup:.1f} s, not "
        f"included; day tables compared equal) {dt.date.today()}",
        [
            "size",
            "side",
            "run",
            "rows",
            "seconds",
            "warm range s",
            "rows/s",
            "ray / single",
        ],
        table,
    )


if __name__ == "__main__":
    main()
