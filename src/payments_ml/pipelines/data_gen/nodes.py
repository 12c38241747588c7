"""Nodes of the data_gen pipeline: catalogues, days generated in parallel, the contract split."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import ray

from payments_ml.contracts import QUARANTINE_REASON, contract_reasons, to_arrow
from payments_ml.pipelines.data_gen.generator import (
    World,
    build_cards,
    build_customers,
    build_merchants,
    generate_day,
)

logger = logging.getLogger(__name__)

__all__ = [
    "build_cards",
    "build_customers",
    "build_merchants",
    "generate_transactions",
    "generation_days",
    "validate_transactions",
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
    params: dict[str, Any],
) -> ray.data.Dataset:
    """Lazily generate every day as its own Ray task (one block per day, streamed)."""
    days = generation_days(params)
    world = World.from_catalogues(customers, cards, merchants, params)
    logger.info(
        "Generating %d day(s) from %s to %s for %d customers and %d merchants",
        len(days),
        days[0],
        days[-1],
        len(customers),
        len(merchants),
    )
    items = [{"day": day.isoformat()} for day in days]
    return ray.data.from_items(items, override_num_blocks=len(days)).map_batches(
        _generate_batch, batch_size=1, batch_format="pandas", fn_kwargs={"world": world}
    )


def _generate_batch(batch: pd.DataFrame, world: World) -> pd.DataFrame:
    frames = [generate_day(world, dt.date.fromisoformat(d)) for d in batch["day"]]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def validate_transactions(
    transactions: ray.data.Dataset,
) -> tuple[ray.data.Dataset, ray.data.Dataset, dict[str, Any]]:
    """Check every row against the contract; split valid rows from quarantined ones.

    Returns:
        ``(valid, quarantine, summary)``; quarantined rows keep every column plus
        ``quarantine_reason``, and valid + quarantined = generated.
    """
    # Batches arrive as Arrow and are converted by pyarrow, so the contract sees numpy dtypes.
    whole = {"batch_size": None, "batch_format": "pyarrow"}
    checked = transactions.map_batches(_check_batch, **whole).materialize()
    # ^ one generation pass feeds both outputs and the summary
    valid = checked.map_batches(_keep, fn_kwargs={"bad": False}, **whole)
    quarantine = checked.map_batches(_keep, fn_kwargs={"bad": True}, **whole).materialize()
    summary = summarize(checked.map_batches(_count_batch, **whole).to_pandas())
    if summary["transactions"] != summary["valid"] + summary["quarantined"]:
        raise RuntimeError(f"contract split lost rows: {summary}")
    logger.info(
        "Generated %d transactions over %d day(s): %d valid, %d quarantined, fraud rate %.3f%%",
        summary["transactions"],
        summary["days"],
        summary["valid"],
        summary["quarantined"],
        100 * summary["fraud_rate"],
    )
    return valid, quarantine, summary


def _check_batch(batch: pa.Table) -> pa.Table:
    frame = batch.to_pandas()
    return to_arrow(frame.assign(**{QUARANTINE_REASON: contract_reasons(frame).to_numpy()}))


def _keep(batch: pa.Table, bad: bool) -> pa.Table:
    mask = pc.is_valid(batch[QUARANTINE_REASON])
    if bad:
        return batch.filter(mask)
    return batch.filter(pc.invert(mask)).drop_columns([QUARANTINE_REASON])


def _count_batch(batch: pa.Table) -> pd.DataFrame:
    batch = batch.select(["event_date", "fraud_scenario", QUARANTINE_REASON]).to_pandas()
    keys = pd.DataFrame(
        {
            "event_date": batch["event_date"],
            "scenario": batch["fraud_scenario"].fillna("genuine"),
            "reason": batch[QUARANTINE_REASON].fillna(""),
        }
    )
    return keys.value_counts().rename("n").reset_index()


def summarize(counts: pd.DataFrame) -> dict[str, Any]:
    """Figures of a generation run from per-batch counts (date, scenario, reason, n)."""
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
