"""Node of the labels pipeline: the feed's reports, checked against the transactions and
resolved by the rule of `payments_ml.labels.feed` (docs/design.md, "Labels")."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from payments_ml.labels import feed

logger = logging.getLogger(__name__)


def resolve_labels(
    raw_transactions: Any,
    label_reports: pads.Dataset | None,
    transaction_files: pads.Dataset | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """One label per reported transaction, the reports not in effect, and their counts.

    ``raw_transactions`` only orders this node after the stage that writes the
    transactions and the feed; the rows are read from ``transaction_files`` (the same
    folder), only those of reported transactions.

    Returns:
        ``(transaction_labels, labels_quarantine, summary)``; without a feed, no labels
        (the transactions' own labels are used) and an empty quarantine.
    """
    reports = _reports(label_reports)
    ids = pa.array(reports["transaction_id"].dropna().unique(), pa.string())
    found = (
        transaction_files.to_table(
            columns=["transaction_id", "merchant_id", "event_timestamp"],
            filter=pc.field("transaction_id").isin(ids),
        ).to_pandas()
        if transaction_files is not None and len(ids)
        else pd.DataFrame(columns=["transaction_id", "merchant_id", "event_timestamp"])
    )
    labels, quarantine = feed.resolve(reports, found)
    summary = {
        "reports": len(reports),
        "labelled_transactions": len(labels),
        "frauds": int(labels["is_fraud"].sum()),
        "quarantined": len(quarantine),
        "quarantine_by_reason": {
            k: int(v) for k, v in quarantine[feed.QUARANTINE_REASON].value_counts().items()
        },
    }
    if not len(reports):
        logger.info("Labels: no labels feed; the transactions' own labels are used")
    else:
        logger.info(
            "Labels: %d report(s), %d labelled transaction(s) (%d fraud), %d quarantined",
            *(summary[k] for k in ("reports", "labelled_transactions", "frauds", "quarantined")),
        )
    if len(quarantine):
        logger.warning("Labels quarantined, by reason: %s", summary["quarantine_by_reason"])
    return _typed(labels), quarantine, summary


def _reports(files: pads.Dataset | None) -> pd.DataFrame:
    if files is None:
        return feed.FEED_SCHEMA.empty_table().to_pandas()
    missing = sorted(set(feed.FEED_COLUMNS) - set(files.schema.names))
    if missing:
        raise ValueError(
            f"the labels feed lacks columns {missing}: each report needs "
            f"{', '.join(feed.FEED_COLUMNS)} (docs/design.md, 'Labels')"
        )
    return files.to_table(columns=feed.FEED_COLUMNS).to_pandas()


def _typed(labels: pd.DataFrame) -> pd.DataFrame:
    """The labels with fixed column types (an empty table keeps them too)."""
    out = labels.astype({"merchant_id": "int64", "is_fraud": bool})
    for column in ("label_available_at", "event_timestamp"):
        out[column] = pd.to_datetime(out[column], utc=True).astype(pd.DatetimeTZDtype("ns", "UTC"))
    out["transaction_id"] = out["transaction_id"].astype(object)
    return out
