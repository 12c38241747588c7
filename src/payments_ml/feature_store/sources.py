"""Feast batch sources: the snapshot rows the features pipeline writes under data/04_feature.

Paths come from conf/<env>/feast.yml, never from code.
"""

from feast import FileSource


def customer_snapshots_source(path: str) -> FileSource:
    """Customer snapshot rows: the full-day part of each customer window, per change day."""
    return FileSource(
        name="customer_snapshots_source",
        path=path,
        timestamp_field="snapshot_ts",
        description="Full-day part of the customer windows as of each snapshot midnight (UTC).",
    )


def merchant_snapshots_source(path: str) -> FileSource:
    """Merchant snapshot rows: windows ending label_delay_days before each snapshot midnight."""
    return FileSource(
        name="merchant_snapshots_source",
        path=path,
        timestamp_field="snapshot_ts",
        description="Merchant transaction counts and reported fraud rates per snapshot day.",
    )
