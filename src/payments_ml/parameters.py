"""Typed schemas of the parameter files, checked before any node runs.

One model per parameter file (conf/base/parameters_<stage>.yml), for the keys a user
sets: their types and allowed ranges. ``check_parameters`` runs in the parameters hook
(payments_ml.config.ParametersHook) as the run's context is created, so a wrong value
stops `kedro run` before a node has read or written anything, with one message that
names each wrong key, its value and what is allowed. Unknown keys in a stage's section
are refused too (a misspelt key would otherwise be ignored). Nested settings with their
own readers (the fraud scenarios, the search space, the monitoring rules, the ingest
mapping) are checked by those readers; the nodes keep their own checks for callers
outside Kedro.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

import click
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

Count = Field(ge=1)
Days = Field(ge=0)
Share = Field(ge=0.0, le=1.0)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FraudSettings(_Open):
    rate: float = Field(ge=0.0, lt=1.0)


class LabelSettings(_Open):
    standard_delay_days: int = Days
    fraud_delay_median_days: float = Field(gt=0)
    fraud_delay_sigma: float = Field(ge=0)


class DataGen(_Section):
    seed: int = Field(ge=0)
    start_date: dt.date
    n_days: int = Field(ge=1, le=36600)
    run_date: dt.date | None = None
    n_customers: int = Count
    n_merchants: int = Count
    n_regions: int = Count
    customers: dict[str, Any]
    merchants: dict[str, Any]
    seasonality: dict[str, Any]
    fraud: FraudSettings
    labels: LabelSettings
    corruption_rate: float = Field(ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _a_store_per_city(self) -> DataGen:
        if self.n_merchants < self.n_regions:
            raise ValueError(
                f"n_merchants ({self.n_merchants}) must be >= n_regions ({self.n_regions}) "
                "so that every city has a store"
            )
        return self


class Features(_Section):
    label_delay_days: int = Days
    partitions: int | None = Field(default=None, ge=1)
    run_date: dt.date | None = None


class Thresholds(_Section):
    review_precision: float = Field(gt=0.0, le=1.0)
    decline_precision: float = Field(gt=0.0, le=1.0)


class Training(_Section):
    every_days: int | None = Field(default=None, ge=1)
    force: bool = False
    train_days: int = Count
    valid_days: int = Count
    delay_days: int = Days
    test_days: int = Count
    test_end: dt.date | None = None
    known_fraud_lookback_days: int | None = Field(default=None, ge=0)
    max_dropped_test_share: float = Share
    num_samples: int = Count
    metric: Literal["average_precision", "auc"]
    cpus_per_trial: float = Field(gt=0)
    refit_threads: int = Count
    seed: int
    num_boost_round: int = Count
    early_stopping_rounds: int = Count
    report_every: int = Count
    asha: dict[str, Any]
    tune_storage_path: str
    lightgbm: dict[str, Any]
    search_space: dict[str, Any]
    thresholds: Thresholds
    card_precision_k: int = Count
    baseline: dict[str, Any]
    registry: dict[str, Any]


class Review(_Section):
    """The review loop (docs/design.md, "Review loop"): who may write, what the queue shows."""

    analysts: dict[str, str] = Field(default_factory=dict)
    history: int = Count

    @field_validator("analysts")
    @classmethod
    def _digests(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            if not re.fullmatch(r"[0-9a-fA-F]{64}", str(digest)):
                raise ValueError(
                    f"{name}: must be the SHA-256 (64 hex digits) of their token, not the "
                    "token (python -m payments_ml.serving.review digest)"
                )
        return value


class Serving(_Section):
    app_name: str
    host: str
    port: int = Field(ge=1, le=65535)
    model_uri: str
    model_watch_s: float | None = Field(default=None, gt=0)
    num_replicas: Any
    replica_cpus: float = Field(gt=0)
    max_ongoing_requests: int = Count
    max_queued_requests: int = Field(ge=-1)
    ready_timeout_s: float = Field(gt=0)
    online_store_timeout_s: float = Field(gt=0)
    retry_after_s: float = Field(ge=0)
    event_time: dict[str, Any]
    score_log: dict[str, Any]
    alerts_path: str | None = None
    labels_path: str | None = None
    review: Review | None = None

    @field_validator("num_replicas")
    @classmethod
    def _replicas(cls, value: Any) -> Any:
        if value == "auto" or (
            isinstance(value, int) and not isinstance(value, bool) and value >= 1
        ):
            return value
        raise ValueError("must be 'auto' or a whole number >= 1")


class Drift(_Section):
    recent_days: int = Count
    psi_bins: int = Field(ge=2)
    min_rows: int = Count


class Monitoring(_Section):
    as_of: str | None = None
    run_date: dt.date | None = None
    quality: dict[str, Any]
    drift: Drift
    rules: dict[str, Any]
    review_days: int = Field(default=7, ge=1)


class QuarantineShares(_Section):
    warn_share: float = Share
    fail_share: float = Share

    @model_validator(mode="after")
    def _ordered(self) -> QuarantineShares:
        if self.warn_share > self.fail_share:
            raise ValueError(
                f"warn_share ({self.warn_share}) must be <= fail_share ({self.fail_share})"
            )
        return self


class Ingest(_Open):
    quarantine: QuarantineShares | None = None
    alerts_path: str | None = None
    path: str | None = None
    format: Literal["auto", "csv", "parquet"] = "auto"
    label_delay_days: int = Days
    run_date: dt.date | None = None
    partitions: int | None = Field(default=None, ge=1)
    batch_rows: int = Count


SCHEMAS: dict[str, type[BaseModel]] = {
    "data_gen": DataGen,
    "features": Features,
    "training": Training,
    "serving": Serving,
    "monitoring": Monitoring,
    "ingest": Ingest,
}


class ParameterError(click.ClickException, ValueError):
    """Parameters outside their schema; the message names every wrong key. `kedro run`
    (click) prints it as one line, ``Error: <message>``, and exits with status 1."""


def parameter_errors(params: dict[str, Any]) -> list[str]:
    """``["data_gen.n_days = -3: must be >= 1", ...]``: each key of ``params`` outside its
    schema, with its value and what is allowed (empty when all are in range)."""
    found = []
    sections = {"run_date": None, **params}
    if params.get("run_date") is not None:
        found += _errors("", _RunDate, {"run_date": params["run_date"]})
    for section, schema in SCHEMAS.items():
        if isinstance(sections.get(section), dict):
            found += _errors(f"{section}.", schema, sections[section])
    return found


class _RunDate(BaseModel):
    run_date: dt.date


def check_parameters(params: dict[str, Any]) -> None:
    """Raise ParameterError naming every key of ``params`` outside its schema."""
    errors = parameter_errors(params)
    if errors:
        raise ParameterError(
            "Invalid parameters (conf/<env>/parameters_*.yml or --params): "
            + "; ".join(errors)
            + ". Nothing was run."
        )


def _errors(prefix: str, schema: type[BaseModel], values: dict[str, Any]) -> list[str]:
    try:
        schema.model_validate(values)
    except ValidationError as error:
        return [_describe(prefix, e) for e in error.errors()]
    return []


def _describe(prefix: str, error: dict[str, Any]) -> str:
    where = prefix + ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{where}: no such parameter"
    if error["type"] == "missing":
        return f"{where}: missing"
    if not error["loc"]:  # a check across keys: its message names them
        return f"{prefix.rstrip('.')}: {message}"
    allowed = _ALLOWED.get(error["type"])
    if error["type"].startswith("date_"):
        allowed = "must be a date, YYYY-MM-DD"
    text = allowed.format(**error.get("ctx", {})) if allowed else message
    return f"{where} = {error['input']!r}: {text}"


_ALLOWED = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be {expected}",
}
