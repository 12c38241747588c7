"""The scheduler's commands: a failed task's alert line and the wait for the scorer."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from payments_ml.config import project_settings
from payments_ml.monitoring.alerts import active_alerts
from payments_ml.orchestration import main, task_failure_alert, wait_for_scorer
from tests.conftest import free_port
from tests.project import scratch_project


def test_a_failed_task_is_one_critical_line_the_dashboard_shows(tmp_path, capsys):
    project = scratch_project(tmp_path / "project")
    code = main(
        ["--project", str(project), "alert", "--dag", "payments_nightly", "--task", "features",
         "--logical-date", "2025-06-11T00:00:00+00:00", "--try-number", "3",
         "--log-url", "http://airflow/log", "--run-date", "2025-06-11", "--error", "boom"]
    )  # fmt: skip
    assert code == 0
    path = project_settings(project)["alerts_path"]
    assert json.loads(capsys.readouterr().out) == {"alerts_path": path}
    [alert] = active_alerts(path)
    assert alert["severity"] == "critical" and alert["day"] == "2025-06-11"
    assert alert["metric"] == alert["rule"] == "scheduled_task_failure"
    assert alert["context"] == {
        "dag_id": "payments_nightly", "task_id": "features",
        "logical_date": "2025-06-11T00:00:00+00:00", "try_number": 3,
        "log_url": "http://airflow/log", "error": "boom",
    }  # fmt: skip
    assert alert["message"].startswith("payments_nightly.features failed for 2025-06-11")


def test_the_alert_record_keeps_the_log_format():
    alert = task_failure_alert(dag_id="d", task_id="t", logical_date="x", try_number=1, log_url="u")
    line = alert.record("run-1", dt.datetime(2025, 6, 11, tzinfo=dt.UTC))
    assert list(line)[:8] == [
        "severity", "timestamp", "metric", "value", "threshold", "rule", "message", "run_id",
    ]  # fmt: skip
    assert "error" not in line["context"] and "see its log" in line["message"]


def test_waiting_for_a_scorer_that_does_not_answer_says_what_it_saw():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TimeoutError, match=r"still serves no answer .* version 7"):
        wait_for_scorer(url, "7", timeout_s=0, every_s=0)
