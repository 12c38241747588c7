"""Alerts: threshold rules, the alert record, and the append-only JSON-lines log.

Every monitoring run appends its alerts, each line carrying the run's ``run_id``, plus
one ``info`` line ``monitoring_run`` that closes the run (so a run without alerts is
still visible). *Active* alerts are the warning and critical alerts of the latest run
in the file: each run re-evaluates the current state, so an alert stays active while
its condition holds and disappears with the first run that no longer sees it. Older
lines are history. :func:`active_alerts` is what a dashboard shows.

A line holds at least ``severity`` (info, warning, critical), ``timestamp`` (ISO 8601
UTC, when the run raised it), ``metric``, ``value``, ``threshold``, ``rule``,
``message`` and ``run_id``; plus ``day``, ``feature``, ``column`` or ``context`` where
they apply.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "warning", "critical")
RUN_METRIC = "monitoring_run"  # the info line each run appends last
_DIRECTIONS = ("above", "below")


@dataclass(frozen=True)
class Rule:
    """A threshold rule: ``metric`` above (or below) ``warning`` / ``critical``.

    Attributes:
        name: The rule's key in parameters_monitoring.yml (``monitoring.rules``).
        metric: The metric it judges.
        direction: ``above``: alert when the value exceeds a threshold; ``below``: when
            it falls under one.
        warning: Threshold of a warning (None: no warning level).
        critical: Threshold of a critical alert (None: no critical level).
    """

    name: str
    metric: str
    direction: str
    warning: float | None
    critical: float | None

    @classmethod
    def from_params(cls, name: str, spec: Mapping[str, Any]) -> Rule:
        """A rule from its parameters entry; ``metric`` defaults to the rule's name.

        Raises:
            ValueError: When the direction is unknown or the thresholds are out of order.
        """
        direction = spec.get("direction", "above")
        if direction not in _DIRECTIONS:
            raise ValueError(
                f"monitoring.rules.{name}.direction must be 'above' or 'below', got {direction!r}"
            )
        warning, critical = spec.get("warning"), spec.get("critical")
        if warning is not None and critical is not None:
            wrong = critical < warning if direction == "above" else critical > warning
            if wrong:
                raise ValueError(
                    f"monitoring.rules.{name}: critical ({critical}) must be "
                    f"{'at or above' if direction == 'above' else 'at or below'} warning "
                    f"({warning}) for direction {direction!r}; swap them"
                )
        return cls(
            name=name,
            metric=spec.get("metric", name),
            direction=direction,
            warning=None if warning is None else float(warning),
            critical=None if critical is None else float(critical),
        )

    def judge(self, value: float | None) -> tuple[str, float] | None:
        """The severity and the threshold ``value`` crosses, or None when it crosses none."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        for severity, threshold in (("critical", self.critical), ("warning", self.warning)):
            if threshold is None:
                continue
            if (self.direction == "above" and value > threshold) or (
                self.direction == "below" and value < threshold
            ):
                return severity, threshold
        return None


def load_rules(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Rule]:
    """Every rule of ``monitoring.rules``, by name."""
    return {name: Rule.from_params(name, spec) for name, spec in specs.items()}


@dataclass
class Alert:
    """One alert, before the run stamps it with its id and time."""

    severity: str
    metric: str
    value: float | None
    threshold: float | None
    rule: str
    message: str
    day: str | None = None
    feature: str | None = None
    column: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    def record(self, run_id: str, timestamp: dt.datetime) -> dict[str, Any]:
        """The JSON line: fixed keys first, optional keys only when set."""
        line: dict[str, Any] = {
            "severity": self.severity,
            "timestamp": iso_utc(timestamp),
            "metric": self.metric,
            "value": _number(self.value),
            "threshold": _number(self.threshold),
            "rule": self.rule,
            "message": self.message,
            "run_id": run_id,
        }
        for key in ("day", "feature", "column"):
            if getattr(self, key) is not None:
                line[key] = getattr(self, key)
        if self.context:
            line["context"] = self.context
        return line


def check(
    rule: Rule,
    value: float | None,
    *,
    day: str | None = None,
    feature: str | None = None,
    column: str | None = None,
    context: dict[str, Any] | None = None,
) -> Alert | None:
    """The alert ``rule`` raises for ``value`` (with where it was measured), if any."""
    judged = rule.judge(value)
    if judged is None:
        return None
    severity, threshold = judged
    where = ", ".join(
        f"{key} {val}"
        for key, val in (("day", day), ("feature", feature), ("column", column))
        if val is not None
    )
    message = (
        f"{rule.metric}{f' ({where})' if where else ''} is {value:.4g}, "
        f"{rule.direction} the {severity} threshold {threshold:g}"
    )
    return Alert(
        severity=severity,
        metric=rule.metric,
        value=float(value),
        threshold=threshold,
        rule=rule.name,
        message=message,
        day=day,
        feature=feature,
        column=column,
        context=dict(context or {}),
    )


def new_run_id(now: dt.datetime) -> str:
    """A run id that sorts by time and stays unique: ``20250629T063000Z-1a2b3c4d``."""
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2025-06-29T06:30:00Z``."""
    if moment.tzinfo is None:
        raise ValueError(f"alert timestamps must be timezone-aware, got naive {moment}")
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def append_alerts(path: str | Path, lines: Iterable[Mapping[str, Any]]) -> int:
    """Append alert lines to the JSON-lines log (created with its folder if missing).

    Returns:
        How many lines were written.
    """
    text = "".join(json.dumps(dict(line), sort_keys=False) + "\n" for line in lines)
    if not text:
        return 0
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    parent = fs._parent(fs_path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(fs_path, "a") as log:  # one write: a run's lines stay together
        log.write(text)
    return text.count("\n")


def read_alerts(
    path: str | Path,
    *,
    since: str | dt.datetime | None = None,
    latest_run: bool = False,
    min_severity: str = "info",
) -> list[dict[str, Any]]:
    """Alert lines of the log, oldest first; an absent log has none.

    Args:
        path: The alerts file (``${globals:paths.alerts}``, data/08_reporting/alerts.jsonl).
        since: Only alerts raised at or after this moment (aware datetime or ISO string).
        latest_run: Only the alerts of the last run in the file.
        min_severity: ``info``, ``warning`` or ``critical``: drop less severe lines.

    Raises:
        ValueError: When ``min_severity`` is unknown or ``since`` is not a valid moment.
    """
    if min_severity not in SEVERITIES:
        raise ValueError(f"min_severity must be one of {SEVERITIES}, got {min_severity!r}")
    fs, fs_path = fsspec.core.url_to_fs(str(path))
    if not fs.exists(fs_path):
        return []
    with fs.open(fs_path, "r") as log:
        lines = _parse(log, str(path))
    if latest_run and lines:
        last = lines[-1].get("run_id")
        lines = [line for line in lines if line.get("run_id") == last]
    if since is not None:
        start = _moment(since)
        lines = [line for line in lines if _moment(line["timestamp"]) >= start]
    floor = SEVERITIES.index(min_severity)
    return [line for line in lines if SEVERITIES.index(line.get("severity", "info")) >= floor]


def active_alerts(path: str | Path) -> list[dict[str, Any]]:
    """The warning and critical alerts of the latest monitoring run: what is wrong now."""
    return read_alerts(path, latest_run=True, min_severity="warning")


def _parse(log: Iterable[str], name: str) -> list[dict[str, Any]]:
    lines = []
    for number, text in enumerate(log, start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            # A line cut short by a crash mid-write: the rest of the log is still good.
            logger.warning("Skipping unreadable line %d of %s", number, name)
            continue
        if isinstance(line, dict) and line.get("severity") in SEVERITIES:
            lines.append(line)
    return lines


def _moment(value: str | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as err:
            raise ValueError(
                f"since must be an ISO 8601 moment such as 2025-06-29T00:00:00Z, got {value!r}"
            ) from err
    if moment.tzinfo is None:
        raise ValueError(f"since must carry a time zone (e.g. a trailing Z), got {value!r}")
    return moment


def _number(value: float | None) -> float | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return round(float(value), 6)
