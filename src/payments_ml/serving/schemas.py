"""Request and answer bodies of the scoring API (DESIGN.md, "Serving API")."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 1000  # transactions per /score/batch request
MAX_BODY_BYTES = 1_000_000  # a full batch is about 200 kB


class Transaction(BaseModel):
    """One authorisation to score: the contract's columns without the labels."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    transaction_id: str = Field(min_length=1, max_length=128)
    event_timestamp: datetime = Field(description="authorisation time; UTC when no offset")
    customer_id: int = Field(ge=0, strict=True)
    card_id: int = Field(ge=0, strict=True)
    merchant_id: int = Field(ge=0, strict=True)
    amount: float = Field(gt=0, allow_inf_nan=False)

    @field_validator("event_timestamp")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def transaction_columns(transactions: list[Transaction]) -> dict[str, list]:
    """The transactions as columns (what the Scorer takes): no DataFrame per request."""
    return {name: [getattr(t, name) for t in transactions] for name in Transaction.model_fields}


class BatchRequest(BaseModel):
    """Several transactions, answered in the same order."""

    transactions: list[Transaction] = Field(min_length=1, max_length=MAX_BATCH)


class Reason(BaseModel):
    """A feature that pushed the score up, with its value and contribution (log-odds)."""

    feature: str
    value: float | None
    contribution: float


class Score(BaseModel):
    """The answer for one transaction."""

    transaction_id: str
    fraud_probability: float
    decision: str = Field(description="approve, review or decline")
    model_version: str
    reasons: list[Reason]
    features_used: dict[str, float | None]


class BatchScore(BaseModel):
    """The answers of a batch, in request order."""

    results: list[Score]
