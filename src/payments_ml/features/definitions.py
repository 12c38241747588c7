"""Feature names of the model input: one list, used everywhere.

What each feature means: docs/design.md, "Feature semantics".
"""

from __future__ import annotations

from payments_ml import contracts

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

KEY_COLUMNS = list(contracts.KEY_COLUMNS)
LABEL_COLUMNS = ["is_fraud", "label_available_at"]
TRAINING_SET_COLUMNS = [*KEY_COLUMNS, *LABEL_COLUMNS, *FEATURES]

# The nightly snapshots (Feast sources), column -> (value kind, meaning); the Feast
# views' schemas are built from these (feature_store/views.py).
# Customers: the full-day part of the customer windows.
CUSTOMER_SNAPSHOT_COLUMNS: dict[str, tuple[str, str]] = {
    **{
        f"{kind}_{w}d": (dtype, f"{what} over the {w} full days before midnight")
        for w in WINDOW_DAYS
        for kind, dtype, what in (
            ("tx_count", "int64", "transactions"),
            ("amount_sum", "float64", "amount"),
        )
    },
    "last_tx_ns": ("int64", "the latest transaction before midnight, ns UTC"),
    "late_tx_ns": ("int64[]", "the transactions of the last hour before midnight, ns UTC"),
}
CUSTOMER_SNAPSHOT_FEATURES = list(CUSTOMER_SNAPSHOT_COLUMNS)
# Merchants: the merchant features themselves (their windows end label_delay_days
# before midnight, so they are complete as of the snapshot).
MERCHANT_SNAPSHOT_COLUMNS: dict[str, tuple[str, str]] = {
    name: ("int64", "transactions") if "_tx_count_" in name else ("float64", "fraud rate")
    for name in MERCHANT_FEATURES
}

NIGHT_HOURS = range(0, 6)  # is_night: 00:00 to 05:59 UTC
