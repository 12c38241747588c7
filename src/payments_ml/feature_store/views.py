"""Feast feature views over the snapshot sources."""

from datetime import timedelta

from feast import FeatureView, Field, FileSource, PushSource
from feast.types import Array, Float64, Int64

from payments_ml.feature_store.entities import customer, merchant
from payments_ml.features.definitions import WINDOW_DAYS

# A snapshot row holds until the entity's next row (rows are written only where a value
# changes), so rows never expire: ttl 0 means "no expiry" in Feast.
NO_EXPIRY = timedelta(0)


def customer_snapshot_fv(source: FileSource) -> FeatureView:
    """Customer windows, full days only; serving adds today's running part."""
    return FeatureView(
        name="customer_snapshot",
        entities=[customer],
        ttl=NO_EXPIRY,
        schema=[
            *(Field(name=f"tx_count_{w}d", dtype=Int64) for w in WINDOW_DAYS),
            *(Field(name=f"amount_sum_{w}d", dtype=Float64) for w in WINDOW_DAYS),
            Field(name="last_tx_ns", dtype=Int64, description="latest transaction before midnight"),
            Field(
                name="late_tx_ns", dtype=Array(Int64), description="transactions in the last hour"
            ),
        ],
        source=source,
        online=True,
        description="Customer transactions and amounts over [D - w days, D), w in 1, 7, 30.",
        tags={"owner": "payments-ml", "refresh": "daily"},
    )


def merchant_snapshot_fv(source: FileSource) -> FeatureView:
    """Merchant windows ending label_delay_days before midnight: complete as of the snapshot."""
    return FeatureView(
        name="merchant_snapshot",
        entities=[merchant],
        ttl=NO_EXPIRY,
        schema=[
            *(Field(name=f"merchant_tx_count_{w}d", dtype=Int64) for w in WINDOW_DAYS),
            *(Field(name=f"merchant_fraud_rate_{w}d", dtype=Float64) for w in WINDOW_DAYS),
        ],
        source=source,
        online=True,
        description="Merchant transactions and reported fraud rate over [D - d - w, D - d) days.",
        tags={"owner": "payments-ml", "refresh": "daily"},
    )


def customer_today_fv(source: PushSource) -> FeatureView:
    """Each customer's transactions since midnight UTC: the running part of the windows.

    The scorer appends every transaction it scores (atomically, by transaction id), so
    the customer's next transaction sees it; a new day starts the list afresh.
    """
    return FeatureView(
        name="customer_today",
        entities=[customer],
        ttl=timedelta(days=2),
        schema=[
            Field(name="day", dtype=Int64, description="days since 1970-01-01 (UTC)"),
            Field(name="tx_ns", dtype=Array(Int64), description="event times, ns UTC"),
            Field(name="amounts", dtype=Array(Float64)),
            Field(name="tx_keys", dtype=Array(Int64), description="hashed transaction ids"),
        ],
        source=source,
        online=True,
        description="Customer transactions of the current UTC day, streamed by the scorer.",
        tags={"owner": "payments-ml", "refresh": "streaming"},
    )
