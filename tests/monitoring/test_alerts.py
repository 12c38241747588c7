"""Rules, alert records, and the append-only alert log with its reader."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from payments_ml.monitoring import alerts as al

T0 = dt.datetime(2025, 7, 1, 6, 0, tzinfo=dt.UTC)


def test_a_rule_raises_the_most_severe_level_it_crosses():
    drop = al.Rule.from_params(
        "volume_drop",
        {"metric": "row_count_ratio", "direction": "below", "warning": 0.8, "critical": 0.6},
    )
    assert drop.judge(0.5) == ("critical", 0.6)
    assert drop.judge(0.7) == ("warning", 0.8)
    assert drop.judge(0.8) is None  # at the threshold is not past it
    assert drop.judge(float("nan")) is None and drop.judge(None) is None
    spike = al.Rule.from_params("null_rate", {"warning": 0.001, "critical": None})
    assert spike.metric == "null_rate" and spike.direction == "above"
    assert spike.judge(0.5) == ("warning", 0.001)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"direction": "under"}, "monitoring.rules.r.direction must be 'above' or 'below'"),
        ({"warning": 0.5, "critical": 0.1}, r"critical \(0.1\) must be at or above warning"),
        (
            {"direction": "below", "warning": 0.5, "critical": 0.9},
            r"critical \(0.9\) must be at or below warning",
        ),
    ],
)
def test_a_wrong_rule_says_what_to_fix(spec, message):
    with pytest.raises(ValueError, match=message):
        al.Rule.from_params("r", spec)


def test_an_alert_record_has_the_contract_keys():
    rule = al.Rule.from_params("null_rate", {"warning": 0.001, "critical": 0.01})
    alert = al.check(rule, 0.3, day="2025-06-20", column="merchant_id", context={"rows": 9})
    line = alert.record("run-1", T0)
    assert line == {
        "severity": "critical",
        "timestamp": "2025-07-01T06:00:00Z",
        "metric": "null_rate",
        "value": 0.3,
        "threshold": 0.01,
        "rule": "null_rate",
        "message": "null_rate (day 2025-06-20, column merchant_id) is 0.3, above the "
        "critical threshold 0.01",
        "run_id": "run-1",
        "day": "2025-06-20",
        "column": "merchant_id",
        "context": {"rows": 9},
    }
    assert al.check(rule, 0.0005) is None


def test_run_ids_sort_by_time_and_differ():
    first, second = al.new_run_id(T0), al.new_run_id(T0)
    assert re.fullmatch(r"20250701T060000Z-[0-9a-f]{8}", first) and first != second
    assert al.new_run_id(T0 + dt.timedelta(seconds=1)) > first
    with pytest.raises(ValueError, match="timezone-aware"):
        al.iso_utc(dt.datetime(2025, 7, 1))


def _run(path, run_id, when, severities):
    lines = [
        {
            "severity": s,
            "timestamp": al.iso_utc(when),
            "metric": f"m{i}",
            "value": 1.0,
            "threshold": 0.5,
            "run_id": run_id,
        }
        for i, s in enumerate(severities)
    ]
    return al.append_alerts(path, lines)


def test_the_log_appends_runs_and_the_reader_filters_them(tmp_path):
    path = tmp_path / "reporting" / "alerts.jsonl"
    assert al.read_alerts(path) == [] and al.active_alerts(path) == []
    assert _run(path, "a", T0, ["critical", "warning", "info"]) == 3
    assert _run(path, "b", T0 + dt.timedelta(days=1), ["warning", "info"]) == 2
    assert len(path.read_text().splitlines()) == 5
    assert [line["run_id"] for line in al.read_alerts(path)] == ["a", "a", "a", "b", "b"]
    latest = al.read_alerts(path, latest_run=True)
    assert [(line["run_id"], line["severity"]) for line in latest] == [
        ("b", "warning"),
        ("b", "info"),
    ]
    assert [line["severity"] for line in al.active_alerts(path)] == ["warning"]
    assert len(al.read_alerts(path, min_severity="critical")) == 1
    since = al.read_alerts(path, since="2025-07-01T12:00:00Z")
    assert {line["run_id"] for line in since} == {"b"}
    assert len(al.read_alerts(path, since=T0)) == 5


def test_a_run_without_alerts_clears_the_active_ones(tmp_path):
    path = tmp_path / "alerts.jsonl"
    _run(path, "a", T0, ["critical"])
    _run(path, "b", T0, ["info"])  # the run's own monitoring_run line
    assert al.active_alerts(path) == []


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path, caplog):
    path = tmp_path / "alerts.jsonl"
    _run(path, "a", T0, ["warning"])
    with path.open("a") as f:
        f.write('{"severity": "crit')
        f.write("\n")
    _run(path, "b", T0, ["critical"])
    assert [line["run_id"] for line in al.read_alerts(path)] == ["a", "b"]
    assert "Skipping unreadable line 2" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_severity": "error"}, "min_severity must be one of"),
        ({"since": "yesterday"}, "since must be an ISO 8601 moment"),
        ({"since": "2025-07-01T00:00:00"}, "since must carry a time zone"),
    ],
)
def test_bad_reader_arguments_say_what_to_pass(tmp_path, kwargs, message):
    path = tmp_path / "alerts.jsonl"
    _run(path, "a", T0, ["warning"])
    with pytest.raises(ValueError, match=message):
        al.read_alerts(path, **kwargs)


def test_values_that_json_cannot_hold_are_written_as_null(tmp_path):
    alert = al.Alert("warning", "m", float("inf"), None, "r", "text")
    path = tmp_path / "alerts.jsonl"
    al.append_alerts(path, [alert.record("a", T0)])
    line = json.loads(path.read_text())
    assert line["value"] is None and line["threshold"] is None
