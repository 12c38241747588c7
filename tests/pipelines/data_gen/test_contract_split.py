"""The vectorised contract split data_gen uses gives pandera's verdicts, row for row.

`split_table_by_contract` runs TRANSACTION_SCHEMA's checks on Arrow columns; every test
here compares its two tables with pandera's split of the same rows (`split_by_contract`
on pandas, then `to_arrow`), schema, values and reasons included.
"""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from payments_ml import contracts
from payments_ml.contracts import (
    ContractError,
    split_by_contract,
    split_table_by_contract,
    to_arrow,
)
from payments_ml.data_gen import generator as g

DAY = dt.date(2025, 6, 11)


def _not_called(*args, **kwargs):
    raise AssertionError("the vectorised checks should have answered, not pandera")


def _pandera_split(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    valid, quarantine = split_by_contract(table.to_pandas())
    return to_arrow(valid), to_arrow(quarantine)


def _assert_same_split(table: pa.Table, *, vectorised: bool = True) -> pa.Table:
    with pytest.MonkeyPatch.context() as patch:
        if vectorised:  # pandera must not be what answers
            patch.setattr(contracts, "split_by_contract", _not_called)
        valid, quarantine = split_table_by_contract(table)
    expected_valid, expected_quarantine = _pandera_split(table)
    assert valid.schema == expected_valid.schema
    assert quarantine.schema == expected_quarantine.schema
    assert valid.equals(expected_valid, check_metadata=True)
    assert quarantine.equals(expected_quarantine, check_metadata=True)
    return quarantine


@pytest.fixture(scope="module")
def day_table(base_params) -> pa.Table:
    params = copy.deepcopy(base_params) | {"corruption_rate": 0.01}
    return g.generate_day_table(g.world_of(params), DAY)


def _with(table: pa.Table, name: str, rows: list[int], values: list) -> pa.Table:
    column = table.column(name).to_pylist()
    for row, value in zip(rows, values, strict=True):
        column[row] = value
    index = table.column_names.index(name)
    return table.set_column(index, name, pa.array(column, table.schema.field(name).type))


def test_generated_defects_get_pandera_verdicts(day_table):
    quarantine = _assert_same_split(day_table)
    assert quarantine.num_rows > 50  # every kind of generated defect is in there
    reasons = set(quarantine.column("quarantine_reason").to_pylist())
    assert {"amount: null", "amount: greater_than(0)", "transaction_id: duplicate"} <= reasons


def test_duplicates_are_found_in_any_row_order(day_table):
    # Generated ids come sorted (duplicates are neighbours); shuffled, they are hashed.
    shuffled = day_table.take(np.random.default_rng(7).permutation(day_table.num_rows))
    reasons = _assert_same_split(shuffled).column("quarantine_reason").to_pylist()
    assert "transaction_id: duplicate" in reasons


def test_every_check_and_combinations_get_pandera_verdicts(day_table):
    ts = day_table.column("event_timestamp").to_pylist()
    before_1970 = pd.Timestamp("1969-12-31 23:00", tz="UTC")
    bad = day_table.slice(0, 2_000)
    for name, rows, values in [
        ("customer_id", [1, 2], [-1, -(2**62)]),
        ("card_id", [3, 2], [-5, -1]),
        ("merchant_id", [4], [-1]),
        ("amount", [5, 6, 7, 8, 9, 2], [0.0, -0.0, float("-inf"), float("inf"), None, -1.0]),
        ("transaction_id", [10, 11, 12, 13, 14], ["", "", "tx-a", "tx-a", "tx-a"]),
        ("label_available_at", [15, 16], [ts[15] - dt.timedelta(microseconds=1), ts[16]]),
        ("fraud_scenario", [17, 18], ["card_testing", ""]),
        ("is_fraud", [19], [True]),
        ("event_date", [20, 21, 22, 23, 24], ["2025-06-12", "soon", "2025-6-11", "", "20250611"]),
        ("event_timestamp", [25, 26], [before_1970, ts[26] + dt.timedelta(days=1)]),
        ("event_date", [25], ["1969-12-31"]),
    ]:
        bad = _with(bad, name, rows, values)
    quarantine = _assert_same_split(bad)
    assert quarantine.num_rows >= 25
    several = [r for r in quarantine.column("quarantine_reason").to_pylist() if "; " in r]
    assert several  # rows failing two checks list both, as pandera joins them


def test_nan_amounts_are_null_in_both_parts_and_pandas_nan_counts_as_missing(day_table):
    small = day_table.slice(0, 100)
    amounts = small.column("amount").to_numpy().copy()
    amounts[[3, 4]] = np.nan  # NaN values, not nulls: pandas reads both as missing
    index = small.column_names.index("amount")
    quarantine = _assert_same_split(small.set_column(index, "amount", pa.array(amounts)))
    assert quarantine.column("amount").null_count >= 2


def test_empty_parts_and_all_null_columns_keep_pandas_types(day_table):
    clean = split_table_by_contract(day_table)[0]
    _assert_same_split(clean)  # an empty quarantine
    _assert_same_split(clean.slice(0, 0))  # nothing at all
    genuine = clean.filter(pa.compute.invert(clean.column("is_fraud")))
    _assert_same_split(genuine)  # fraud_scenario all null
    _assert_same_split(pa.concat_tables([clean.slice(0, 10), day_table.slice(5, 10)]))  # chunked


def test_batches_outside_the_vectorised_checks_go_through_pandera(day_table):
    small = day_table.slice(0, 50)
    _assert_same_split(_with(small, "transaction_id", [3], [None]), vectorised=False)
    _assert_same_split(_with(small, "event_timestamp", [4], [None]), vectorised=False)
    _assert_same_split(small.append_column("note", pa.array([1.5] * 50)), vectorised=False)
    as_micros = small.column("event_timestamp").cast(pa.timestamp("us", tz="UTC"))
    with pytest.raises(ContractError, match="event_timestamp"):
        split_table_by_contract(small.set_column(1, "event_timestamp", as_micros))
    with pytest.raises(ContractError, match="missing column 'amount'"):
        split_table_by_contract(small.drop_columns(["amount"]))
