"""Feast feature views over the snapshot sources."""

from datetime import timedelta

from feast import FeatureView, Field, FileSource, PushSource
from feast.types import Array, Float64, Int64

from payments_ml.feature_store.entities import customer, merchant
from payments_ml.features import today
from payments_ml.features.definitions import CUSTOMER_SNAPSHOT_COLUMNS, MERCHANT_SNAPSHOT_COLUMNS

# A snapshot row holds until the entity's next row (rows are written only where a value
# changes), so rows never expire: ttl 0 means "no expiry" in Feast.
NO_EXPIRY = timedelta(0)

_FEAST_TYPES = {
    "int64": Int64,
    "float64": Float64,
    "int64[]": Array(Int64),
    "float64[]": Array(Float64),
}


def _schema(columns: dict[str, tuple[str, str]]) -> list[Field]:
    """Feast fields of ``{column: (value kind, meaning)}``, in that order."""
    return [
        Field(name=name, dtype=_FEAST_TYPES[kind], description=meaning)
        for name, (kind, meaning) in columns.items()
    ]


def customer_snapshot_fv(source: FileSource) -> FeatureView:
    """Customer windows, full days only; serving adds today's running part."""
    return FeatureView(
        name="customer_snapshot",
        entities=[customer],
        ttl=NO_EXPIRY,
        schema=_schema(CUSTOMER_SNAPSHOT_COLUMNS),
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
        schema=_schema(MERCHANT_SNAPSHOT_COLUMNS),
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
        schema=_schema(today.SCHEMA),
        source=source,
        online=True,
        description="Customer transactions of the current UTC day, streamed by the scorer.",
        tags={"owner": "payments-ml", "refresh": "streaming"},
    )
