"""Nodes of the data_gen pipeline: entity catalogues, then every day as its own Ray task."""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray

from payments_ml.contracts import ARROW_TYPES
from payments_ml.data_gen.days import FRAUD_COLUMNS, checked_days, concat_days
from payments_ml.data_gen.generator import (
    World,
    build_cards,
    build_customers,
    build_merchants,
    day_number,
)
from payments_ml.datasets.blocks import dataset_from_blocks
from payments_ml.datasets.file_tasks import SPREAD, tasks_for_cluster
from payments_ml.datasets.progress import gather
from payments_ml.labels.feed import chargebacks

logger = logging.getLogger(__name__)

__all__ = [
    "build_cards",
    "build_customers",
    "build_merchants",
    "generate_transactions",
    "generation_days",
    "summarize",
]


def generation_days(params: dict[str, Any]) -> list[dt.date]:
    """The days to generate: the whole period, or only ``run_date`` when it is set."""
    if params.get("run_date"):
        return [_parse_date(params["run_date"], "run_date")]
    start = _parse_date(params["start_date"], "start_date")
    n_days = int(params["n_days"])
    if n_days < 1:
        raise ValueError(f"data_gen.n_days must be >= 1, got {n_days}")
    return [start + dt.timedelta(days=i) for i in range(n_days)]


def _parse_date(value: Any, key: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as err:
        raise ValueError(f"data_gen.{key} must be an ISO date (YYYY-MM-DD), got {value!r}") from err


def generate_transactions(
    customers: pd.DataFrame,
    cards: pd.DataFrame,
    merchants: pd.DataFrame,
    transaction_files: pads.Dataset | None,
    params: dict[str, Any],
) -> tuple[ray.data.Dataset, ray.data.Dataset, ray.data.Dataset, dict[str, Any]]:
    """Generate the days in Ray tasks and check each row against the contract.

    A task builds a run of days (at least 4 runs per CPU of the cluster), splits them into valid
    and quarantined rows and counts them. The tables stay in Ray's object store (spilled
    to disk when large) until the catalog writes them, a file per day; only the counts
    and the frauds come back to this process.

    Returns:
        ``(valid, quarantine, labels, summary)``: quarantined rows keep every column plus
        ``quarantine_reason``; valid + quarantined = generated, or this raises. ``labels``:
        the chargebacks that arrive on the generated days (the labels feed, by report day;
        with ``run_date``, that day's reports, of its frauds and of the earlier days' in
        ``transaction_files``).
    """
    days = generation_days(params)
    world = World.from_catalogues(customers, cards, merchants, params)
    runs = _runs_of_days(world, days)
    logger.info(
        "Generating %d day(s) from %s to %s for %d customers and %d merchants",
        *(len(days), days[0], days[-1], len(customers), len(merchants)),
    )
    world_ref = ray.put(world)
    # SPREAD: the world's bytes are on this node, where Ray would otherwise put them all.
    task = _generate_days.options(num_returns=5, name="generate_days", scheduling_strategy=SPREAD)
    valid_refs, quarantine_refs, count_refs, fraud_refs, info_refs = zip(
        *(task.remote(world_ref, run) for run in runs), strict=True
    )
    counts = pa.concat_tables(gather(list(count_refs), "runs of days generated")).to_pandas()
    summary = summarize(counts)
    if summary["transactions"] != summary["valid"] + summary["quarantined"]:
        raise RuntimeError(f"contract split lost rows: {summary}")
    frauds = [pa.concat_tables(ray.get(list(fraud_refs))).to_pandas()]
    if params.get("run_date"):
        frauds.append(_earlier_frauds(transaction_files, days[0]))
    labels = chargebacks(
        pd.concat(frauds, ignore_index=True), *map(day_number, (days[0], days[-1]))
    )
    summary["label_reports"] = len(labels)
    logger.info(
        "Generated %d transactions over %d day(s): %d valid, %d quarantined, fraud rate "
        "%.3f%%; %d fraud reports arrived",
        summary["transactions"],
        summary["days"],
        summary["valid"],
        summary["quarantined"],
        100 * summary["fraud_rate"],
        len(labels),
    )
    valid = dataset_from_blocks(list(valid_refs), ray.get(list(info_refs)))
    # A few rows a day: one block, not one per run (each block costs Ray Data a metadata
    # task and the catalog a write task).
    quarantine = ray.data.from_arrow_refs([_concat.remote(*quarantine_refs)])
    return valid, quarantine, ray.data.from_pandas(labels), summary


def _earlier_frauds(files: pads.Dataset | None, day: dt.date) -> pd.DataFrame:
    """The frauds of the days before ``day`` whose report is not in yet at its start."""
    if files is None:
        return pd.DataFrame(columns=FRAUD_COLUMNS)
    start = pa.scalar(
        pd.Timestamp(day, tz="UTC").to_pydatetime(), ARROW_TYPES["label_available_at"]
    )
    wanted = (
        (pc.field("event_date") < day.isoformat())
        & pc.field("is_fraud")
        & (pc.field("label_available_at") >= start)
    )
    return files.to_table(columns=FRAUD_COLUMNS, filter=wanted).to_pandas()


# The tasks' functions live in a module without pandera (see payments_ml.data_gen.days).
_generate_days = ray.remote(checked_days)
_concat = ray.remote(concat_days)
_ROWS_PER_TASK = 350_000


def _runs_of_days(world: World, days: list[dt.date]) -> list[list[dt.date]]:
    """The days in runs of about ``_ROWS_PER_TASK`` expected rows, at least 4 runs per CPU
    of the cluster. A task per day cost more in Ray's scheduling, object store and writes
    than its 22 ms of work at 1 M rows over 90 days (8 runs: 2.0 s -> 1.45 s warm); much
    larger runs slowed a first run at 10 M rows (8 runs of 1.3 M rows: 9.2 s, 30 runs:
    8.1 s, 90 runs: 8.3 s)."""
    expected = sum(world.expected_daily_volume(day) for day in days)
    wanted = max(2 * tasks_for_cluster(), math.ceil(expected / _ROWS_PER_TASK))
    runs = np.array_split(np.array(days, dtype=object), min(len(days), wanted))
    return [list(run) for run in runs]


def summarize(counts: pd.DataFrame) -> dict[str, Any]:
    """Figures of a generation run from per-day counts (event_date, scenario, reason, n)."""
    valid = counts[counts["reason"] == ""]
    total = int(counts["n"].sum())
    frauds = valid[valid["scenario"] != "genuine"]
    reasons = counts[counts["reason"] != ""].groupby("reason")["n"].sum()
    days = sorted(counts["event_date"].unique())
    return {
        "transactions": total,
        "valid": int(valid["n"].sum()),
        "quarantined": int(total - valid["n"].sum()),
        "days": len(days),
        "first_day": days[0] if days else None,
        "last_day": days[-1] if days else None,
        "fraud_rate": float(frauds["n"].sum() / max(valid["n"].sum(), 1)),
        "frauds_by_scenario": {k: int(v) for k, v in frauds.groupby("scenario")["n"].sum().items()},
        "quarantine_by_check": {k: int(v) for k, v in reasons.items()},
    }
