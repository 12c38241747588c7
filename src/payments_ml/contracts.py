"""Data contracts (pandera) and the split of a batch into valid and quarantined rows.

Rows that break the contract never vanish: :func:`split_by_contract` returns them with
the reason, so that ``len(valid) + len(quarantine) == len(batch)`` always holds.
Structural problems (a missing column, a wrong type) are not row problems: they raise
:class:`ContractError` naming the column, because no row of such a batch can be trusted.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.compute as pc

if TYPE_CHECKING:
    import pandera.pandas as pa

# pandera is imported where the schema is built or used: a Ray worker that generates days
# checks them with the Arrow path alone and starts 0.14 s sooner without it.

QUARANTINE_REASON = "quarantine_reason"
_CHECK_NAMES = {"multiple_fields_uniqueness": "transaction_id: duplicate", "not_nullable": "null"}
UTC_TIMESTAMP = pd.DatetimeTZDtype("ns", "UTC")
_NS_PER_DAY = 86_400 * 1_000_000_000


def _event_date_matches(df: pd.DataFrame) -> pd.Series:
    if "event_date" not in df:
        return pd.Series(True, index=df.index)
    # Parse the few distinct partition values once, then compare by position.
    codes, uniques = pd.factorize(df["event_date"])
    day = _parse_days(uniques)[codes]
    return pd.Series(
        day == df["event_timestamp"].dt.floor("D").to_numpy("datetime64[ns]"), index=df.index
    )


def _parse_days(values: Any) -> np.ndarray:
    """Partition values (``YYYY-MM-DD``) as UTC midnights, ``NaT`` where they are no date."""
    parsed = pd.to_datetime(pd.Series(values), utc=True, errors="coerce", format="%Y-%m-%d")
    return parsed.to_numpy("datetime64[ns]")


def _strings(column: pd.Series) -> bool:
    """A column of strings (nulls allowed), checked in C rather than row by row."""
    return pd.api.types.is_string_dtype(column.dtype) and pd.api.types.infer_dtype(
        column, skipna=True
    ) in ("string", "empty")


def _string_column(*checks: pa.Check, nullable: bool = False, required: bool = True) -> pa.Column:
    import pandera.pandas as pa  # noqa: PLC0415

    return pa.Column(
        None,
        checks=[pa.Check(_strings, name="strings", element_wise=False), *checks],
        nullable=nullable,
        required=required,
    )


@functools.cache
def transaction_schema() -> pa.DataFrameSchema:
    """The contract as a pandera schema (docs/design.md, "Data contract"), built once.
    ``TRANSACTION_SCHEMA`` names it too."""
    import pandera.pandas as pa  # noqa: PLC0415

    return pa.DataFrameSchema(
        {
            "transaction_id": _string_column(pa.Check.str_length(min_value=1)),
            "event_timestamp": pa.Column(UTC_TIMESTAMP),
            "customer_id": pa.Column("int64", pa.Check.ge(0)),
            "card_id": pa.Column("int64", pa.Check.ge(0)),
            "merchant_id": pa.Column("int64", pa.Check.ge(0)),
            "amount": pa.Column("float64", pa.Check.gt(0)),
            "is_fraud": pa.Column(bool),
            "fraud_scenario": _string_column(nullable=True),
            "label_available_at": pa.Column(UTC_TIMESTAMP),
            "event_date": _string_column(required=False),
        },
        checks=[
            # Element-wise checks across columns; the name is the reason a row is quarantined.
            pa.Check(
                lambda df: df["label_available_at"] >= df["event_timestamp"],
                name="label_available_at: not before event_timestamp",
            ),
            pa.Check(
                lambda df: df["is_fraud"] | df["fraud_scenario"].isna(),
                name="fraud_scenario: null on genuine transactions",
            ),
            pa.Check(
                _event_date_matches,
                name="event_date: UTC date of event_timestamp",
            ),
        ],
        unique=["transaction_id"],
        report_duplicates="exclude_first",
        strict=False,
        name="transactions",
    )


def __getattr__(name: str) -> Any:
    if name == "TRANSACTION_SCHEMA":  # built on first use: it imports pandera
        return transaction_schema()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The columns of a transaction as it is scored (what a request carries).
KEY_COLUMNS = (
    "transaction_id",
    "event_timestamp",
    "customer_id",
    "card_id",
    "merchant_id",
    "amount",
)
# The contract's columns (docs/design.md, "Data contract"), in its order.
CONTRACT_COLUMNS = (*KEY_COLUMNS, "is_fraud", "fraud_scenario", "label_available_at")

# Arrow types of the contract's columns: fixed so that every Parquet file of a dataset
# has the same schema (an all-null column would otherwise be written as type null).
ARROW_TYPES = {
    "transaction_id": pyarrow.string(),
    "event_timestamp": pyarrow.timestamp("ns", tz="UTC"),
    "customer_id": pyarrow.int64(),
    "card_id": pyarrow.int64(),
    "merchant_id": pyarrow.int64(),
    "amount": pyarrow.float64(),
    "is_fraud": pyarrow.bool_(),
    "fraud_scenario": pyarrow.string(),
    "label_available_at": pyarrow.timestamp("ns", tz="UTC"),
    "event_date": pyarrow.string(),
    QUARANTINE_REASON: pyarrow.string(),
}


def to_arrow(frame: pd.DataFrame) -> pyarrow.Table:
    """Convert to Arrow with the contract's column types (other columns are inferred)."""
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    fields = [pyarrow.field(f.name, ARROW_TYPES.get(f.name, f.type)) for f in table.schema]
    return table.cast(pyarrow.schema(fields))


class ContractError(ValueError):
    """A batch is structurally unusable (missing column, wrong type)."""


def contract_reasons(frame: pd.DataFrame, schema: pa.DataFrameSchema | None = None) -> pd.Series:
    """Why each row breaks the contract: ``None`` for a valid row, else ``column: check; ...``.

    Args:
        frame: Rows to check; the result is aligned with them by position.
        schema: The pandera schema of the contract (None: :func:`transaction_schema`).

    Raises:
        ContractError: When a column is missing or has the wrong type.
    """
    from pandera.errors import SchemaErrors  # noqa: PLC0415

    schema = schema if schema is not None else transaction_schema()
    positional = frame.reset_index(drop=True)
    try:
        schema.validate(positional, lazy=True)
    except SchemaErrors as err:
        return _row_reasons(err.failure_cases, len(positional))
    return pd.Series(None, index=positional.index, dtype=object)


def split_by_contract(
    frame: pd.DataFrame, schema: pa.DataFrameSchema | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a batch into rows that meet the contract and quarantined rows with their reason.

    Returns:
        ``(valid, quarantine)``: ``quarantine`` has the input columns plus
        ``quarantine_reason``; ``len(valid) + len(quarantine) == len(frame)``.

    Raises:
        ContractError: When a column is missing or has the wrong type.
    """
    frame = frame.reset_index(drop=True)
    reasons = contract_reasons(frame, schema)
    bad = reasons.notna().to_numpy()
    quarantine = frame[bad].assign(**{QUARANTINE_REASON: reasons[bad].to_numpy()})
    return frame[~bad].reset_index(drop=True), quarantine.reset_index(drop=True)


def split_table_by_contract(table: pyarrow.Table) -> tuple[pyarrow.Table, pyarrow.Table]:
    """:func:`split_by_contract` of a batch in Arrow, both parts as :func:`to_arrow` gives them.

    The verdicts are :func:`transaction_schema`'s: pandera stays the contract. A batch of
    the contract's Arrow types with no null key, id, time or flag (what the generator and
    a mapped feed produce) is checked by the same checks run vectorised on its Arrow
    columns, with the same reasons, at a small part of pandera's cost on pandas (the tests
    compare both verdicts on corrupted rows); any other batch goes through pandera.

    Raises:
        ContractError: When a column is missing or has the wrong type.
    """
    if not _vectorised_checks_apply(table):
        valid, quarantine = split_by_contract(table.to_pandas())
        return to_arrow(valid), to_arrow(quarantine)
    failed = dict(sorted(_failed_checks(table).items()))  # pandera joins reasons sorted
    bits = np.zeros(table.num_rows, dtype=np.int64)
    for i, rows in enumerate(failed.values()):
        bits |= rows.astype(np.int64) << i
    bad = bits != 0
    # One reason string per distinct set of failed checks.
    kinds, which = np.unique(bits[bad], return_inverse=True)
    names = ["; ".join(r for i, r in enumerate(failed) if int(k) >> i & 1) for k in kinds]
    reasons = pyarrow.array(np.asarray(names, dtype=object)[which], pyarrow.string())
    table = _nan_amounts_as_null(table)
    quarantine = table.filter(bad).append_column(QUARANTINE_REASON, reasons)
    return _as_from_pandas(table.filter(~bad)), _as_from_pandas(quarantine)


# The batches the vectorised checks cover: the contract's types, no null where the check
# of a null would differ from pandas' (keys, ids, times, flags), other columns of types
# that pandas gives back unchanged.
_NOT_NULL = (
    "transaction_id",
    "event_timestamp",
    "customer_id",
    "card_id",
    "merchant_id",
    "is_fraud",
    "label_available_at",
    "event_date",
)
_NON_NEGATIVE = ("customer_id", "card_id", "merchant_id")


def _vectorised_checks_apply(table: pyarrow.Table) -> bool:
    names = table.column_names
    if len(set(names)) != len(names) or QUARANTINE_REASON in names:
        return False
    for name in names:
        column = table.column(name)
        if name in ARROW_TYPES:
            expected = column.type == ARROW_TYPES[name]
        else:  # kept as they are by a round trip through pandas
            expected = pyarrow.types.is_string(column.type) or (
                column.null_count == 0
                and (pyarrow.types.is_integer(column.type) or pyarrow.types.is_boolean(column.type))
            )
        if not expected or (name in _NOT_NULL and column.null_count):
            return False
    return all(name in names for name in CONTRACT_COLUMNS)


def _failed_checks(table: pyarrow.Table) -> dict[str, np.ndarray]:
    """Rows failing each check of the contract, by the reason pandera gives."""
    column = {name: table.column(name).combine_chunks() for name in table.column_names}
    amount = column["amount"].to_numpy(zero_copy_only=False)  # null is NaN, as in pandas
    missing = np.isnan(amount)
    event = column["event_timestamp"].to_numpy()
    ids = column["transaction_id"]
    failed = {
        "amount: null": missing,
        "amount: greater_than(0)": ~missing & ~(amount > 0),
        "fraud_scenario: null on genuine transactions": column["fraud_scenario"]
        .is_valid()
        .to_numpy(zero_copy_only=False)
        & ~column["is_fraud"].to_numpy(zero_copy_only=False),
        "label_available_at: not before event_timestamp": column["label_available_at"].to_numpy()
        < event,
        "transaction_id: duplicate": _repeated(ids),
        "transaction_id: str_length(1, None)": pc.equal(pc.binary_length(ids), 0).to_numpy(
            zero_copy_only=False
        ),
    }
    for name in _NON_NEGATIVE:
        failed[f"{name}: greater_than_or_equal_to(0)"] = column[name].to_numpy() < 0
    if "event_date" in column:
        encoded = pc.dictionary_encode(column["event_date"])
        day = _parse_days(encoded.dictionary.to_pandas())[encoded.indices.to_numpy()]
        floor = event.astype(np.int64) // _NS_PER_DAY * _NS_PER_DAY
        failed["event_date: UTC date of event_timestamp"] = ~(day == floor.view("datetime64[ns]"))
    return failed


def _repeated(values: pyarrow.Array) -> np.ndarray:
    """Every occurrence of a value but its first (pandas' ``duplicated(keep="first")``)."""
    if len(values) < 2:
        return np.zeros(len(values), dtype=bool)
    later, earlier = values[1:], values[:-1]
    if pc.all(pc.greater_equal(later, earlier)).as_py():
        # Sorted (as generated ids are): equal values are neighbours, no hashing needed.
        return np.r_[False, pc.equal(later, earlier).to_numpy(zero_copy_only=False)]
    codes = pc.dictionary_encode(values).indices.to_numpy().astype(np.int64)
    # Codes number the distinct values in order of first appearance: a first occurrence
    # is a code above every code before it.
    return codes <= np.maximum.accumulate(np.r_[-1, codes[:-1]])


def _nan_amounts_as_null(table: pyarrow.Table) -> pyarrow.Table:
    """NaN amounts become null, as :func:`to_arrow` makes them from pandas."""
    amount = table.column("amount")
    if not pc.any(pc.is_nan(amount)).as_py():
        return table
    values = pyarrow.array(amount.to_numpy(), from_pandas=True)
    return table.set_column(table.column_names.index("amount"), "amount", values)


def _as_from_pandas(table: pyarrow.Table) -> pyarrow.Table:
    """Columns outside the contract typed as :func:`to_arrow` would type them from pandas:
    an all-null (or empty) string column is an all-None object column there, typed null."""
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if (
            field.name not in ARROW_TYPES
            and pyarrow.types.is_string(field.type)
            and column.null_count == len(column)
        ):
            table = table.set_column(i, field.name, pyarrow.nulls(len(column)))
    return table


def _row_reasons(cases: pd.DataFrame, n_rows: int) -> pd.Series:
    structural = cases[cases["index"].isna()]
    if len(structural):
        details = "; ".join(
            _describe_structural(ctx, col, check, found)
            for ctx, col, check, found in structural[
                ["schema_context", "column", "check", "failure_case"]
            ].itertuples(index=False)
        )
        raise ContractError(
            f"transactions do not match the contract: {details}. "
            "Map or cast the source columns to the contract "
            "(see docs/design.md, 'Data contract')."
        )
    check = cases["check"].astype(str).replace(_CHECK_NAMES)
    in_column = (cases["schema_context"] == "Column").to_numpy()
    label = np.where(in_column, cases["column"].astype(str) + ": " + check, check)
    rows = pd.DataFrame({"row": cases["index"].astype(np.int64), "reason": label})
    rows = rows.drop_duplicates().sort_values(["row", "reason"])
    joined = rows.groupby("row")["reason"].agg("; ".join)
    return joined.reindex(range(n_rows)).astype(object).where(lambda r: r.notna(), None)


def _describe_structural(context: str, column: str, check: str, found: object) -> str:
    if check == "column_in_dataframe":
        return f"missing column '{found}'"
    if context == "Column":
        return f"column '{column}' should be {check}, found {found}"
    return f"{check}: {found}"
