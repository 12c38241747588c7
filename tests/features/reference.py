"""A plain reference of docs/design.md's "Feature semantics": slow, direct, obviously right.

Every feature is computed from its definition by filtering the entity's history for each
transaction (numpy masks per row); nothing is shared with payments_ml.features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NS_HOUR, NS_DAY = 3_600 * 10**9, 86_400 * 10**9


def _ns(column: pd.Series) -> np.ndarray:
    return (
        column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)
    )


def reference_features(tx: pd.DataFrame, label_delay_days: int) -> pd.DataFrame:
    """Every feature for every transaction, indexed by transaction_id."""
    d = label_delay_days
    frame = pd.DataFrame(
        {
            "c": tx["customer_id"].to_numpy(),
            "m": tx["merchant_id"].to_numpy(),
            "t": _ns(tx["event_timestamp"]),
            "a": tx["amount"].to_numpy(float),
            "f": tx["is_fraud"].to_numpy(bool),
            "l": _ns(tx["label_available_at"]),
        }
    )
    customers = {c: g for c, g in frame.groupby("c")}
    merchants = {m: g for m, g in frame.groupby("m")}
    rows = []
    for c, m, t, a in frame[["c", "m", "t", "a"]].itertuples(index=False):
        midnight = t - t % NS_DAY
        hist = customers[c]
        ts, amounts = hist["t"].to_numpy(), hist["a"].to_numpy()
        before = ts < t
        feats = {}
        for w in (1, 7, 30):
            window = amounts[before & (ts >= midnight - w * NS_DAY)]
            feats[f"customer_tx_count_{w}d"] = len(window)
            feats[f"customer_amount_sum_{w}d"] = window.sum()
            feats[f"customer_amount_avg_{w}d"] = window.mean() if len(window) else np.nan
        feats["customer_tx_count_1h"] = int((before & (ts >= t - NS_HOUR)).sum())
        feats["seconds_since_last_customer_tx"] = (
            (t - ts[before].max()) / 1e9 if before.any() else np.nan
        )
        shop = merchants[m]
        sts, fraud, label = shop["t"].to_numpy(), shop["f"].to_numpy(), shop["l"].to_numpy()
        for w in (1, 7, 30):
            inside = (sts >= midnight - (d + w) * NS_DAY) & (sts < midnight - d * NS_DAY)
            # A fraud counts once reported: by the first snapshot whose window holds its day.
            reported = label <= (sts - sts % NS_DAY) + (d + 1) * NS_DAY
            n = inside.sum()
            feats[f"merchant_tx_count_{w}d"] = n
            feats[f"merchant_fraud_rate_{w}d"] = (inside & fraud & reported).sum() / n if n else 0.0
        stamp = pd.Timestamp(t, tz="UTC")
        feats["amount_to_customer_avg_30d"] = a / feats["customer_amount_avg_30d"]
        feats["hour_of_day"] = stamp.hour
        feats["is_weekend"] = stamp.dayofweek >= 5
        feats["is_night"] = stamp.hour < 6
        rows.append(feats)
    return pd.DataFrame(rows, index=tx["transaction_id"].to_numpy())
