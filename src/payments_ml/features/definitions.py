"""Feature names of the model input: one list, used everywhere.

What each feature means: docs/design.md, "Feature semantics".
"""

from __future__ import annotations

WINDOW_DAYS = (1, 7, 30)

CUSTOMER_FEATURES = [
    *(
        f"customer_{kind}_{w}d"
        for w in WINDOW_DAYS
        for kind in ("tx_count", "amount_avg", "amount_sum")
    ),
    "customer_tx_count_1h",
    "seconds_since_last_customer_tx",
]
MERCHANT_FEATURES = [
    *(f"merchant_{kind}_{w}d" for w in WINDOW_DAYS for kind in ("tx_count", "fraud_rate")),
]
REQUEST_FEATURES = ["amount_to_customer_avg_30d", "hour_of_day", "is_weekend", "is_night"]
FEATURES = [*CUSTOMER_FEATURES, *MERCHANT_FEATURES, *REQUEST_FEATURES]

# A feature's value for an entity with no history (cold start), and what the model uses
# when a request lacks it: None where docs/design.md ("Feature semantics") defines the
# feature as null when empty.
FEATURE_DEFAULTS: dict[str, float | None] = {
    name: None
    if "_avg_" in name or name.startswith("seconds_since") or name in REQUEST_FEATURES
    else 0.0
    for name in FEATURES
}

KEY_COLUMNS = [
    "transaction_id",
    "event_timestamp",
    "customer_id",
    "card_id",
    "merchant_id",
    "amount",
]
LABEL_COLUMNS = ["is_fraud", "label_available_at"]
TRAINING_SET_COLUMNS = [*KEY_COLUMNS, *LABEL_COLUMNS, *FEATURES]

# The full-day part of the customer windows, kept in the nightly snapshot (Feast source).
CUSTOMER_SNAPSHOT_FEATURES = [
    *(f"{kind}_{w}d" for w in WINDOW_DAYS for kind in ("tx_count", "amount_sum")),
    "last_tx_ns",  # the customer's latest transaction before the snapshot day
    "late_tx_ns",  # their transactions in the last hour before midnight (1 h window)
]

NIGHT_HOURS = range(0, 6)  # is_night: 00:00 to 05:59 UTC
