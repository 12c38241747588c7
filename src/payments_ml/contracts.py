"""Data contracts (pandera) and the split of a batch into valid and quarantined rows.

Rows that break the contract never vanish: :func:`split_by_contract` returns them with
the reason, so that ``len(valid) + len(quarantine) == len(batch)`` always holds.
Structural problems (a missing column, a wrong type) are not row problems: they raise
:class:`ContractError` naming the column, because no row of such a batch can be trusted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from pandera.errors import SchemaErrors

QUARANTINE_REASON = "quarantine_reason"
_CHECK_NAMES = {"multiple_fields_uniqueness": "transaction_id: duplicate", "not_nullable": "null"}
UTC_TIMESTAMP = pd.DatetimeTZDtype("ns", "UTC")


def _event_date_matches(df: pd.DataFrame) -> pd.Series:
    if "event_date" not in df:
        return pd.Series(True, index=df.index)
    # Parse the few distinct partition values once, then compare by position.
    codes, uniques = pd.factorize(df["event_date"])
    parsed = pd.to_datetime(pd.Series(uniques), utc=True, errors="coerce", format="%Y-%m-%d")
    day = parsed.to_numpy("datetime64[ns]")[codes]
    return pd.Series(
        day == df["event_timestamp"].dt.floor("D").to_numpy("datetime64[ns]"), index=df.index
    )


def _strings(column: pd.Series) -> bool:
    """A column of strings (nulls allowed), checked in C rather than row by row."""
    return pd.api.types.is_string_dtype(column.dtype) and pd.api.types.infer_dtype(
        column, skipna=True
    ) in ("string", "empty")


def _string_column(*checks: pa.Check, nullable: bool = False, required: bool = True) -> pa.Column:
    return pa.Column(
        None,
        checks=[pa.Check(_strings, name="strings", element_wise=False), *checks],
        nullable=nullable,
        required=required,
    )


TRANSACTION_SCHEMA = pa.DataFrameSchema(
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


def contract_reasons(
    frame: pd.DataFrame, schema: pa.DataFrameSchema = TRANSACTION_SCHEMA
) -> pd.Series:
    """Why each row breaks the contract: ``None`` for a valid row, else ``column: check; ...``.

    Args:
        frame: Rows to check; the result is aligned with them by position.
        schema: The pandera schema of the contract.

    Raises:
        ContractError: When a column is missing or has the wrong type.
    """
    positional = frame.reset_index(drop=True)
    try:
        schema.validate(positional, lazy=True)
    except SchemaErrors as err:
        return _row_reasons(err.failure_cases, len(positional))
    return pd.Series(None, index=positional.index, dtype=object)


def split_by_contract(
    frame: pd.DataFrame, schema: pa.DataFrameSchema = TRANSACTION_SCHEMA
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
