"""Feast batch sources: the snapshot rows the features pipeline writes under data/04_feature.

Paths come from conf/<env>/feast.yml, never from code.
"""

from feast import FileSource, PushSource


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


def customer_today_source(path: str) -> PushSource:
    """Today's transactions of each customer, pushed by the scorer as it scores them.

    Its batch side is the scorer's log of scored transactions (the offline record of what
    was served); the online side is the running state the next score reads.
    """
    return PushSource(
        name="customer_today_push",
        batch_source=FileSource(
            name="scored_transactions_source",
            path=path,
            timestamp_field="event_timestamp",
            description="Every transaction the scorer scored, with its features and answer.",
        ),
        description="Running state of each customer's day, updated by every score.",
    )
