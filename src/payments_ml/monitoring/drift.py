"""Drift: feature PSI between two windows, score PSI of the logged predictions.

- *Feature drift*: each model feature in a recent window of the training set against
  the window the model was trained on.
- *Score drift*: the fraud probabilities the scorer logged recently against the scores
  the same model gives a reference window of the training set (out of its training
  data: its test window).
- *Served-feature drift* (train/serve skew): the features the scorer logged against the
  training window; a feature that drifts here but not in the training set points at
  the online path, not at the world.

Both served comparisons take their reference from the same part of the calendar as the
served rows (:func:`served_calendar`): a morning's traffic is compared with mornings, a
weekday's with weekdays. Otherwise the calendar features (hour of day, night, weekend)
and the day's running counts would drift by construction whenever the scorer has served
less than a week.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from payments_ml.features import windows as fw
from payments_ml.features.windows import iso_day  # noqa: F401 (monitoring's name for it)
from payments_ml.monitoring import psi as psi_lib
from payments_ml.monitoring.alerts import Alert, Rule, check

logger = logging.getLogger(__name__)

# Section of the drift report -> the metric its rules judge.
DRIFT_SECTIONS = {
    "feature_drift": "feature_psi",
    "score_drift": "score_psi",
    "served_feature_drift": "served_feature_psi",
}
PER_FEATURE_SECTIONS = {k: v for k, v in DRIFT_SECTIONS.items() if k != "score_drift"}
DRIFT_METRICS = tuple(DRIFT_SECTIONS.values())
DECISIONS = ("approve", "review", "decline")


def feature_drift(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    features: Sequence[str],
    n_bins: int,
    min_rows: int,
) -> dict[str, Any]:
    """PSI of every feature of ``recent`` against ``reference``.

    Returns:
        ``status`` (``ok`` or ``skipped`` with a ``reason`` when a window has fewer than
        ``min_rows`` rows), the row counts and ``psi`` per feature, largest first.
    """
    counts = {"reference_rows": len(reference), "recent_rows": len(recent)}
    if min(len(reference), len(recent)) < min_rows:
        return {
            "status": "skipped",
            "reason": f"a window has fewer than min_rows={min_rows} rows",
            **counts,
        }
    missing = sorted(set(features) - set(recent.columns) | set(features) - set(reference.columns))
    if missing:
        raise ValueError(
            f"feature drift needs the columns {missing}; rebuild the training set "
            "(`kedro run --pipelines features`) or log every feature with the scores"
        )
    values = {
        name: psi_lib.psi_between(
            reference[name].to_numpy(np.float64), recent[name].to_numpy(np.float64), n_bins
        )
        for name in features
    }
    ordered = dict(sorted(values.items(), key=lambda item: -item[1]))
    return {"status": "ok", **counts, "psi": {k: round(v, 6) for k, v in ordered.items()}}


def score_drift(
    reference_scores: np.ndarray,
    served_scores: np.ndarray,
    *,
    n_bins: int,
    min_rows: int,
    reference_decisions: np.ndarray | None = None,
    served_decisions: np.ndarray | None = None,
) -> dict[str, Any]:
    """PSI of the served fraud probabilities against the reference ones.

    Returns:
        ``status``, row counts, ``psi``, score quantiles of both and, when decisions are
        given, the share of each decision in both.
    """
    counts = {"reference_rows": len(reference_scores), "served_rows": len(served_scores)}
    if min(len(reference_scores), len(served_scores)) < min_rows:
        return {
            "status": "skipped",
            "reason": f"fewer than min_rows={min_rows} scores in a window",
            **counts,
        }
    report: dict[str, Any] = {
        "status": "ok",
        **counts,
        "psi": round(psi_lib.psi_between(reference_scores, served_scores, n_bins), 6),
        "quantiles": {
            name: {
                f"p{int(q * 100)}": round(float(np.quantile(values, q)), 6)
                for q in (0.5, 0.9, 0.99)
            }
            for name, values in (("reference", reference_scores), ("served", served_scores))
        },
    }
    if reference_decisions is not None and served_decisions is not None:
        report["decision_shares"] = {
            name: {d: round(float(np.mean(values == d)), 6) for d in DECISIONS}
            for name, values in (("reference", reference_decisions), ("served", served_decisions))
        }
    return report


def served_calendar(event_times: pd.Series) -> dict[str, Any]:
    """The part of the calendar that ``event_times`` cover (UTC, as the features read it).

    Returns:
        ``seconds``: the first and last second of the day (``[first, last]``; first >
        last when the window crosses midnight), or None when they span a day or more;
        ``weekend``: the ``is_weekend`` values seen, or None when they span a week.
    """
    ns = fw.to_ns(event_times)
    if len(ns) == 0:
        return {"seconds": None, "weekend": None}
    first, last = int(ns.min()), int(ns.max())
    seconds = None
    if last - first < fw.NS_DAY:
        seconds = fw.seconds_of_day(np.array([first, last])).tolist()
    weekend = None
    if last - first < 7 * fw.NS_DAY:
        weekend = sorted({bool(w) for w in fw.is_weekend(ns)})
    return {"seconds": seconds, "weekend": weekend}


def in_calendar(rows: pd.DataFrame, calendar: Mapping[str, Any]) -> pd.DataFrame:
    """The rows whose ``event_timestamp`` falls in ``calendar``'s part of the day and week."""
    ns = fw.to_ns(rows["event_timestamp"])
    keep = np.ones(len(rows), dtype=bool)
    if calendar.get("seconds") is not None:
        first, last = calendar["seconds"]
        second = fw.seconds_of_day(ns)
        within = (second >= first) & (second <= last)
        keep &= within if first <= last else (second >= first) | (second <= last)
    if calendar.get("weekend") is not None:
        keep &= np.isin(fw.is_weekend(ns), calendar["weekend"])
    return rows[keep]


def describe_calendar(calendar: Mapping[str, Any]) -> str:
    """``calendar`` in words, for the report and the log: "06:00:00 to 09:59:59 UTC, weekdays"."""
    parts = []
    if calendar.get("seconds") is not None:
        parts.append(" to ".join(_clock(s) for s in calendar["seconds"]) + " UTC")
    weekend = calendar.get("weekend")
    if weekend is not None and len(weekend) == 1:
        parts.append("weekends" if weekend[0] else "weekdays")
    return ", ".join(parts) or "every hour and day"


def _clock(second: int) -> str:
    return f"{second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}"


def recent_scored(
    log: pads.Dataset | None, recent_days: int, columns: Sequence[str]
) -> pd.DataFrame:
    """Rows the scorer logged in its last ``recent_days`` days of activity (by scored_at).

    The window ends at the latest ``scored_at`` in the log, not at today: a log that
    stopped growing still has a recent window to compare.
    """
    if log is None:
        return pd.DataFrame(columns=list(columns))
    missing = sorted(set(columns) - set(log.schema.names))
    if missing:
        raise ValueError(
            f"the scored-transactions log lacks columns {missing}; the scorer must log "
            "them (layout: README, 'Monitoring')"
        )
    stamps = log.to_table(columns=["scored_at"])["scored_at"]
    latest = pc.max(stamps).as_py()
    if latest is None:
        return pd.DataFrame(columns=list(columns))
    start = pd.Timestamp(latest) - pd.Timedelta(days=recent_days)
    # An Arrow scalar of the pandas Timestamp keeps its nanoseconds (to_pydatetime drops them).
    since = pa.scalar(start.as_unit("ns"), pa.timestamp("ns", tz="UTC")).cast(stamps.type)
    table = log.to_table(columns=list(columns), filter=pc.field("scored_at") > since)
    return table.to_pandas()


def drift_alerts(drift: Mapping[str, Any], rules: Mapping[str, Rule]) -> list[Alert]:
    """Alerts of the drift report: per-feature and score PSI rules."""
    found: list[Alert | None] = []
    sections = {metric: drift.get(name, {}) for name, metric in PER_FEATURE_SECTIONS.items()}
    for rule in rules.values():
        if rule.metric in sections:
            section = sections[rule.metric]
            context = {k: section[k] for k in ("reference_window", "recent_window") if k in section}
            for feature, value in section.get("psi", {}).items():
                found.append(check(rule, value, feature=feature, context=context))
        elif rule.metric == "score_psi":
            score = drift.get("score_drift", {})
            if score.get("status") == "ok":
                context = {
                    k: score[k]
                    for k in ("model_version", "reference_window", "served_window")
                    if k in score
                }
                found.append(check(rule, score["psi"], context=context))
    return [alert for alert in found if alert is not None]
