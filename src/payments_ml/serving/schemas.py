"""Request and answer bodies of the scoring API (docs/design.md, "Serving API")."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MAX_BATCH = 1000  # transactions per /score/batch request
MAX_BODY_BYTES = 1_000_000  # a full batch is about 200 kB
INT64_MAX = 2**63 - 1
MAX_AMOUNT = 1e12
# Event times are RFC 3339 text with a year from 1970 to 2261 as written (int64
# nanoseconds reach 2262-04-11); how far ahead of the server clock they may be is a
# deployment setting (serving.event_time.max_ahead_s), checked by the app.
_YEARS = r"(19[7-9][0-9]|2[01][0-9]{2}|22[0-5][0-9]|226[01])"
TIMESTAMP_PATTERN = f"^{_YEARS}-"
_RFC3339 = re.compile(
    _YEARS + r"-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)?", re.ASCII
)


def _whole_number(value: Any) -> Any:
    """A whole JSON number written as a float (7824.0) is an integer, as JSON Schema
    counts it; other floats, strings and booleans stay what they are and are refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _rfc3339(value: Any) -> Any:
    """Text in RFC 3339 with a year from 1970 to 2261 (or a datetime, from Python)."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError(
        "must be an RFC 3339 date-time with a year from 1970 to 2261, "
        "e.g. 2025-06-29T12:00:00Z (UTC when no offset)"
    )


Id = Annotated[
    int,
    Field(ge=0, le=INT64_MAX, strict=True, description="a non-negative int64"),
    BeforeValidator(_whole_number),
]
EventTime = Annotated[
    datetime,
    Field(
        description=(
            "authorisation time, RFC 3339 (UTC when no offset), year 1970 to 2261, and no "
            "more than a configured skew ahead of the server clock "
            "(serving.event_time.max_ahead_s, 5 minutes by default): else 422"
        ),
        json_schema_extra={"pattern": TIMESTAMP_PATTERN},
    ),
    BeforeValidator(_rfc3339),
]


# The request examples of the OpenAPI schema: what /docs shows and "Try it out" sends, and
# schemathesis's first cases. Each is answered 200: a past event time (never ahead of the
# clock) and customer and card ids beyond the generated world's (cold-start features).
TRANSACTION_EXAMPLES: list[dict[str, Any]] = [
    {
        "transaction_id": "example-0001",
        "event_timestamp": "2025-06-29T12:00:00Z",
        "customer_id": 4_200_001,
        "card_id": 8_400_001,
        "merchant_id": 1_201,
        "amount": 42.5,
    },
    {
        "transaction_id": "example-0002",
        "event_timestamp": "2025-06-29T12:00:07+02:00",
        "customer_id": 4_200_002,
        "card_id": 8_400_002,
        "merchant_id": 1_202,
        "amount": 1899.0,
    },
]


class Transaction(BaseModel):
    """One authorisation to score: the contract's columns without the labels."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": TRANSACTION_EXAMPLES})

    transaction_id: str = Field(min_length=1, max_length=128, pattern=r"\S")
    event_timestamp: EventTime
    customer_id: Id
    card_id: Id
    merchant_id: Id
    amount: float = Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False, strict=True)

    @field_validator("event_timestamp")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        if not 1970 <= value.year <= 2261:  # noqa: PLR2004 (a datetime from Python)
            raise ValueError("must have a year from 1970 to 2261")
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def transaction_columns(transactions: list[Transaction]) -> dict[str, list]:
    """The transactions as columns (what the Scorer takes): no DataFrame per request."""
    return {name: [getattr(t, name) for t in transactions] for name in Transaction.model_fields}


class BatchRequest(BaseModel):
    """Several transactions, answered in the same order."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"transactions": TRANSACTION_EXAMPLES}]}
    )

    transactions: list[Transaction] = Field(min_length=1, max_length=MAX_BATCH)


class Reason(BaseModel):
    """A feature that pushed the score up, with its value and contribution (log-odds); or
    the rule that decided (``card_blocked``: value 1, no contribution)."""

    feature: str
    value: float | None
    contribution: float | None


class Score(BaseModel):
    """The answer for one transaction."""

    transaction_id: str
    fraud_probability: float
    decision: str = Field(description="approve, review or decline")
    model_version: str
    reasons: list[Reason]
    features_used: dict[str, float | None]


class ScoreError(BaseModel):
    """A transaction of a batch that could not be scored (its neighbours were)."""

    transaction_id: str
    error: str


class BatchScore(BaseModel):
    """The answers of a batch, in request order."""

    results: list[Score | ScoreError]


class Problem(BaseModel):
    """An error answer: what went wrong and what to do, in ``detail``."""

    detail: str


class InvalidRequest(Problem):
    """A 422: every offending field, named (``transactions.3.amount: ...``)."""

    errors: list[str]


class StoreStatus(BaseModel):
    type: str
    ok: bool
    error: str | None


class ModelStatus(BaseModel):
    """The model a replica scores with, and its watch of the registry alias."""

    version: str
    source: str = Field(description="what is watched, e.g. models:/fraud_model@champion")
    watch_s: float | None = Field(description="seconds between looks at the alias; null: none")
    since: str | None = Field(description="when this version came into use (UTC)")
    switches: int = Field(description="models replaced since the replica started")
    checked_at: str | None = Field(description="the last look at the alias (UTC)")
    error: str | None = Field(description="why the alias's version is not in use; null: it is")


class Health(BaseModel):
    """``ok``, or ``degraded`` while the online store does not answer."""

    status: str = Field(description="ok or degraded")
    model_version: str
    model: ModelStatus
    online_store: StoreStatus
    thresholds: dict[str, float]


_RETRY_AFTER = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the body could not be parsed"},
    413: {"model": Problem, "description": f"body larger than {MAX_BODY_BYTES} bytes"},
    422: {"model": InvalidRequest, "description": "invalid input; the message names the field"},
    500: {"model": Problem, "description": "the transaction could not be scored (logged)"},
    503: {
        "model": Problem,
        "description": "the online store is unavailable, or the scorer is overloaded; retry",
        "headers": _RETRY_AFTER,
    },
}
