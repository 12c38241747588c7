"""The review loop's outcome per day, as monitoring reports it (docs/design.md, "Review
loop"): from the scorer's log (the transactions sent to ``review``) and the analysts'
reports in the labels feed, the same figures the dashboard computes from the online
store (`payments_ml.labels.review.review_outcome`)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads

from payments_ml.labels import review as rules
from payments_ml.labels.feed import FEED_COLUMNS

logger = logging.getLogger(__name__)
_FLAGGED = ["transaction_id", "card_id", "customer_id", "fraud_probability", "scored_at"]


def review_outcome_by_day(
    scored: pads.Dataset | None, reports: pads.Dataset | None, days: int
) -> list[dict[str, Any]]:
    """The review outcome of the latest ``days`` days of the log (none without a log).

    Args:
        scored: The scored-transactions log (Hive ``event_date``), or None.
        reports: The labels feed, or None.
        days: How many of the log's latest days to report.
    """
    if scored is None:
        return []
    flagged = scored.to_table(
        columns=[*_FLAGGED, "event_date"], filter=pc.field("decision") == rules.REVIEW
    ).to_pandas()
    if flagged.empty:
        return []
    feed = _analyst_reports(reports)
    verdicts = rules.verdicts_from_reports(feed)
    flagged["event_date"] = flagged["event_date"].astype(str)
    latest = sorted(flagged["event_date"].unique())[-days:]
    by_day = {
        day: rules.queue_cards(flagged[flagged["event_date"] == day], verdicts) for day in latest
    }
    outcome = rules.review_outcome(by_day)
    logger.info(
        "Review outcome: %s",
        ", ".join(
            f"{d['day']} precision {d['review_precision']}, queue {d['queue_length']}"
            for d in outcome
        ),
    )
    return outcome


def _analyst_reports(reports: pads.Dataset | None) -> pd.DataFrame:
    if reports is None:
        return pd.DataFrame(columns=FEED_COLUMNS)
    columns = FEED_COLUMNS + (["analyst"] if "analyst" in reports.schema.names else [])
    return reports.to_table(columns=columns, filter=pc.field("source") == "analyst").to_pandas()
