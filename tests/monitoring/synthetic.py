"""Small transaction histories on the contract, and the defects monitoring must catch."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from payments_ml.contracts import CONTRACT_COLUMNS
from payments_ml.features.definitions import FEATURES

START = dt.date(2025, 6, 2)  # a Monday
COLUMNS = [*CONTRACT_COLUMNS, "event_date"]
REASON = "quarantine_reason"


def day(i: int) -> str:
    """ISO date of the history's day ``i`` (0-based)."""
    return str(START + dt.timedelta(days=i))


def transactions(
    n_days: int = 28, per_day: int = 400, seed: int = 0, fraud_every: int = 50, first: int = 0
) -> pd.DataFrame:
    """``per_day`` valid transactions a day; every ``fraud_every``-th of a day is a fraud."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(first, first + n_days):
        date = pd.Timestamp(day(i), tz="UTC")
        seconds = np.sort(rng.integers(0, 86_400, per_day))
        stamps = date + pd.to_timedelta(seconds, unit="s")
        fraud = np.arange(per_day) % fraud_every == 0
        frames.append(
            pd.DataFrame(
                {
                    "transaction_id": [f"tx-{day(i)}-{n:05d}-s{seed}" for n in range(per_day)],
                    "event_timestamp": stamps,
                    "customer_id": rng.integers(0, 500, per_day),
                    "card_id": rng.integers(0, 800, per_day),
                    "merchant_id": rng.integers(0, 100, per_day),
                    "amount": np.round(rng.lognormal(3.4, 0.8, per_day), 2),
                    "is_fraud": fraud,
                    "fraud_scenario": np.where(fraud, "card_testing", None),
                    "label_available_at": stamps + pd.Timedelta(days=2),
                    "event_date": day(i),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def empty_quarantine() -> pd.DataFrame:
    """A quarantine with no row yet."""
    return transactions(n_days=1, per_day=1).iloc[:0].assign(**{REASON: pd.Series(dtype=str)})


def null_merchants(
    valid: pd.DataFrame, quarantine: pd.DataFrame, i: int, share: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A feed that lost ``share`` of day ``i``'s merchant ids: those rows are quarantined."""
    rows = valid.index[valid["event_date"] == day(i)]
    broken = rows[: int(len(rows) * share)]
    moved = valid.loc[broken].assign(merchant_id=np.nan, **{REASON: "merchant_id: null"})
    return valid.drop(broken), pd.concat([quarantine, moved], ignore_index=True)


def duplicate_burst(
    valid: pd.DataFrame, quarantine: pd.DataFrame, i: int, n: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` rows of day ``i`` delivered twice: the copies are quarantined as duplicates."""
    copies = valid[valid["event_date"] == day(i)].head(n)
    copies = copies.assign(**{REASON: "transaction_id: duplicate"})
    return valid, pd.concat([quarantine, copies], ignore_index=True)


def thin_day(valid: pd.DataFrame, i: int, keep: float) -> pd.DataFrame:
    """Only ``keep`` of day ``i``'s rows arrive."""
    rows = valid.index[valid["event_date"] == day(i)]
    return valid.drop(rows[int(len(rows) * keep) :])


def fraud_spike(valid: pd.DataFrame, i: int, every: int) -> pd.DataFrame:
    """Every ``every``-th transaction of day ``i`` is a fraud."""
    valid = valid.copy()
    rows = valid.index[valid["event_date"] == day(i)]
    fraud = np.arange(len(rows)) % every == 0
    valid.loc[rows, "is_fraud"] = fraud
    valid.loc[rows, "fraud_scenario"] = np.where(fraud, "card_testing", None)
    return valid


def scale_amounts(valid: pd.DataFrame, i: int, factor: float) -> pd.DataFrame:
    """Day ``i``'s amounts in the wrong unit."""
    valid = valid.copy()
    rows = valid["event_date"] == day(i)
    valid.loc[rows, "amount"] *= factor
    return valid


def late_rows(valid: pd.DataFrame, i: int, n: int, seed: int = 99) -> pd.DataFrame:
    """``n`` more transactions of day ``i`` that turn up later."""
    extra = transactions(n_days=1, per_day=n, seed=seed, first=i)
    return pd.concat([valid, extra], ignore_index=True)


def feature_rows(n_days: int = 28, per_day: int = 300, seed: int = 0) -> pd.DataFrame:
    """Rows of a training set: every feature, from one stable distribution."""
    rng = np.random.default_rng(seed)
    frame = transactions(n_days=n_days, per_day=per_day, seed=seed)
    n = len(frame)
    features = {name: rng.normal(10.0, 2.0, n) for name in FEATURES}
    features["hour_of_day"] = frame["event_timestamp"].dt.hour.to_numpy(np.float64)
    features["is_weekend"] = (frame["event_timestamp"].dt.dayofweek >= 5).to_numpy(np.float64)
    features["is_night"] = (frame["event_timestamp"].dt.hour < 6).to_numpy(np.float64)
    return frame.drop(columns="event_date").assign(**features)
