"""Days generated, checked against the contract and counted: the body of data_gen's Ray
task per run of days.

Arrow from end to end, and nothing here imports pandera or Kedro: a Ray worker's first
task waits 0.34 s for this module's imports on this machine, against 0.49 s for the
pipeline's node module. The driver turns the days' counts and frauds into pandas once.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from payments_ml.contracts import QUARANTINE_REASON, split_table_by_contract
from payments_ml.data_gen.generator import World, generate_day_table
from payments_ml.datasets.blocks import BlockInfo, block_info
from payments_ml.structured_logging import partition_scope

# The frauds' columns that the labels feed needs: a chargeback per fraud.
FRAUD_COLUMNS = ["transaction_id", "is_fraud", "label_available_at"]


def checked_days(
    world: World, days: list[dt.date]
) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table, BlockInfo]:
    """``(valid, quarantine, counts, frauds, valid_info)`` of a run of days, each part one
    table with the days in order: the rows split by the contract, the rows per
    (event_date, scenario, reason) (:func:`day_counts`), the frauds, and the valid block's
    figures for a Ray Dataset (``block_info``)."""
    parts = [checked_day(world, day) for day in days]
    valid, quarantine, counts, frauds = (concat_days(*tables) for tables in zip(*parts))
    return valid, quarantine, counts, frauds, block_info(valid)


def checked_day(world: World, day: dt.date) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """``(valid, quarantine, counts, frauds)`` of one day (see :func:`checked_days`)."""
    with partition_scope(event_date=day.isoformat()):  # a failure names its day
        valid, quarantine = split_table_by_contract(generate_day_table(world, day))
        frauds = valid.filter(valid.column("is_fraud")).select(FRAUD_COLUMNS)
        return valid, quarantine, day_counts(valid, quarantine), frauds


def day_counts(valid: pa.Table, quarantine: pa.Table) -> pa.Table:
    """Rows per (event_date, scenario, reason), as ``n``: ``genuine`` for no scenario,
    ``""`` for valid."""
    reason = pa.repeat(pa.scalar("", pa.string()), valid.num_rows)
    keys = pa.concat_tables(
        [
            valid.select(["event_date", "fraud_scenario"]).append_column("reason", reason),
            quarantine.select(["event_date", "fraud_scenario", QUARANTINE_REASON]).rename_columns(
                ["event_date", "fraud_scenario", "reason"]
            ),
        ]
    )
    scenario = pc.fill_null(keys.column("fraud_scenario"), "genuine")
    keys = keys.set_column(1, "scenario", scenario)
    columns = ["event_date", "scenario", "reason"]
    counts = keys.group_by(columns).aggregate([([], "count_all")])
    return counts.rename_columns({"count_all": "n"}).select([*columns, "n"])


def concat_days(*tables: pa.Table) -> pa.Table:
    """The days' tables as one (a day without a defect has null-typed columns in its
    quarantine: they take the other days' types)."""
    return pa.concat_tables(tables, promote_options="default")
