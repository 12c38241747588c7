"""Ingest throughput: the ingest nodes on Ray vs the same mapping in one process.

Both sides ingest the same Sparkov-layout CSV (the shipped mapping of
``parameters_ingest.yml``) and do the same work: read the columns the mapping names,
map them onto the contract (:func:`map_table`), run the pandera contract over the whole
file (transaction ids unique across it), write valid and quarantined rows as
day-partitioned Parquet, and derive the customer, card and merchant catalogues. The Ray
side runs ``ingest_transactions`` + ``RayParquetDataset`` saves + ``derive_catalogues``
twice (first run: workers' imports; warm run); the baseline runs pyarrow and pandas in
this process (pyarrow's reader and writer use its own threads), also twice: each Ray run
is compared with the single process's run of the same kind (its first run varied from
5.5 to 9.7 s at 1 M rows, its contract check alone from 2.7 to 4.1 s). Both outputs are
compared (row counts, catalogues) before any figure prints.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_ds
import ray
from tests.pipelines.ingest.sparkov import sparkov_transactions

from benchmarks.common import load_params, print_table, start_ray, timer
from payments_ml.datasets import RayParquetDataset
from payments_ml.ingest.mapping import IngestPlan
from payments_ml.pipelines.ingest import nodes

SIZES = {"1M": 1_000_000, "10M": 10_000_000}
N_DAYS = 180
Catalogues = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


def write_csv(n_rows: int, path: Path) -> Path:
    sparkov_transactions(n_rows, n_days=N_DAYS).to_csv(path)
    return path


def run_single_process(plan: IngestPlan, out: Path) -> tuple[dict[str, Any], Catalogues]:
    """The ingest nodes' work in this process: the Ray tasks' functions called directly."""
    times: dict[str, float] = {}
    with timer() as t:
        table = pa_csv.read_csv(plan.path, **plan.csv_options())
        mapped = nodes.map_table(table, plan)
        # The whole file as one partition of the contract check: ids unique across it.
        valid, quarantine, _ = nodes._check_partition._function(plan.arrow_schema(), mapped)
        valid = valid.sort_by(nodes._VALID_ORDER)
        quarantine = quarantine.sort_by(nodes._QUARANTINE_ORDER)
    times["ingest"] = t["seconds"]
    with timer() as t:
        for name, part in (("valid", valid), ("quarantine", quarantine)):
            if part.num_rows:
                pa_ds.write_dataset(
                    part,
                    out / name,
                    format="parquet",
                    partitioning=["event_date"],
                    partitioning_flavor="hive",
                )
    times["write"] = t["seconds"]
    with timer() as t:
        stats = nodes._block_stats._function(valid, plan)
        catalogues = nodes.derive_catalogues(stats, plan)
    times["catalogues"] = t["seconds"]
    result = times | {
        "rows": table.num_rows,
        "valid": valid.num_rows,
        "quarantined": quarantine.num_rows,
    }
    return result, catalogues


def run_ray(plan: IngestPlan, out: Path) -> tuple[dict[str, Any], Catalogues]:
    """The pipeline's nodes and its catalog's Parquet writes, as `kedro run` runs them."""
    times: dict[str, float] = {}
    with timer() as t:
        valid, quarantine, summary, stats = nodes.ingest_transactions(plan)
    times["ingest"] = t["seconds"]
    with timer() as t:
        RayParquetDataset(filepath=str(out / "valid"), partition_cols=["event_date"]).save(valid)
        RayParquetDataset(filepath=str(out / "quarantine"), partition_cols=["event_date"]).save(
            quarantine
        )
    times["write"] = t["seconds"]
    with timer() as t:
        catalogues = nodes.derive_catalogues(stats, plan)
    times["catalogues"] = t["seconds"]
    del valid, quarantine  # free the object store before the next run
    result = times | {
        "rows": summary["rows"],
        "valid": summary["valid"],
        "quarantined": summary["quarantined"],
    }
    return result, catalogues


def written_rows(folder: Path) -> int:
    if not folder.exists():
        return 0
    return pa_ds.dataset(folder, format="parquet", partitioning="hive").count_rows()


def check_same(
    single: dict[str, Any], ours: dict[str, Any], expected: Catalogues, got: Catalogues
) -> None:
    for key in ("rows", "valid", "quarantined"):
        assert single[key] == ours[key], f"{key}: single process {single[key]}, Ray {ours[key]}"
    for want, have in zip(expected, got, strict=True):
        pd.testing.assert_frame_equal(want, have, check_exact=False, rtol=1e-9)


RUNS = ("first run", "warm run")


def _total(result: dict[str, Any]) -> float:
    return result["ingest"] + result["write"] + result["catalogues"]


def main(quick: bool = False) -> None:
    sizes = {"100k": 100_000} if quick else SIZES
    startup = None
    table, source = [], []
    try:
        for label, n_rows in sizes.items():
            root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
            try:
                with timer() as gen_t:
                    csv = write_csv(n_rows, root / "sparkov.csv")
                    # The file's dirty pages on disk before either side reads it: the
                    # write-back of 2.8 GB would otherwise slow whichever side runs first.
                    os.sync()
                source.append(
                    f"{label}: {csv.stat().st_size / 1e6:.0f} MB, generated in "
                    f"{gen_t['seconds']:.0f} s"
                )
                plan = nodes.plan_ingest(load_params("ingest") | {"path": str(csv)})
                singles = {}
                for run in RUNS:  # each side's first and warm runs, compared alike
                    shutil.rmtree(root / "single", ignore_errors=True)
                    singles[run], expected = run_single_process(plan, root / "single")
                if startup is None:  # after the baseline: no idle Ray processes beside it
                    startup = start_ray()
                runs = {}
                for run in RUNS:
                    shutil.rmtree(root / "ray", ignore_errors=True)
                    runs[run], got = run_ray(plan, root / "ray")
                    check_same(singles[run], runs[run], expected, got)
                    for name in ("valid", "quarantine"):
                        assert written_rows(root / "ray" / name) == written_rows(
                            root / "single" / name
                        ), f"{name}: the two sides wrote different row counts"
                for run in RUNS:
                    single_total = _total(singles[run])
                    for side, result in (("single process", singles[run]), ("ray", runs[run])):
                        total = _total(result)
                        table.append(
                            [
                                label,
                                f"{side}, {run}",
                                result["rows"],
                                result["ingest"],
                                result["write"],
                                result["catalogues"],
                                total,
                                result["rows"] / total,
                                single_total / total,
                            ]
                        )
            finally:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        ray.shutdown()
    print_table(
        f"ingest: Sparkov CSV ({'; '.join(source)}; {N_DAYS} days) -> contract, Parquet, "
        f"catalogues, {os.cpu_count()} CPUs (Ray start-up {startup:.1f} s, not included; "
        f"outputs compared equal) {dt.date.today()}",
        [
            "size",
            "side",
            "rows",
            "ingest s",
            "write s",
            "catalogues s",
            "total s",
            "rows/s",
            "ray / single",
        ],
        table,
    )


if __name__ == "__main__":
    main()
