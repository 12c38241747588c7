"""The results block `make run` prints (python -m payments_ml.report)."""

from __future__ import annotations

import json

from payments_ml.config import project_settings
from payments_ml.monitoring.alerts import append_alerts
from payments_ml.report import main, results
from tests.project import scratch_project


def _write(path: str, data: dict) -> None:
    from pathlib import Path  # noqa: PLC0415

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data))


def test_before_any_run_each_stage_says_how_to_run_it(tmp_path):
    settings = project_settings(scratch_project(tmp_path / "p"))
    lines = results(settings)
    assert lines[0] == "Results"
    assert "not generated yet (kedro run --pipelines data_gen)" in lines[1]
    assert "not trained yet (kedro run --pipelines training)" in lines[2]
    assert "none logged yet (kedro run --pipelines monitoring)" in lines[-1]


def test_after_a_run_the_data_the_model_its_baseline_the_champion_and_the_alerts(tmp_path, capsys):
    project = scratch_project(tmp_path / "p")
    paths = project_settings(project)
    datasets = paths["datasets"]
    _write(datasets["data_gen_summary"], {
        "transactions": 1_000_123, "days": 90, "first_day": "2025-04-01",
        "last_day": "2025-06-29", "fraud_rate": 0.0066, "quarantined": 201,
    })  # fmt: skip
    metrics = {"test_average_precision": 0.61, "test_roc_auc": 0.97,
               "test_card_precision_at_100": 0.32, "baseline_average_precision": 0.35,
               "baseline_roc_auc": 0.9, "baseline_card_precision_at_100": 0.2}  # fmt: skip
    _write(
        datasets["evaluation_report"],
        {"metrics": metrics, "test_rows": 150_000, "test_frauds": 990},
    )
    _write(datasets["model_promotion"], {
        "model_name": "fraud_model", "new_version": "3", "metric": "test_average_precision",
        "new_value": 0.61, "champion_version": "2", "champion_value": 0.58, "promoted": True,
        "champion_after": "3",
    })  # fmt: skip
    alert = {"severity": "critical", "timestamp": "2025-06-30T06:00:00Z", "metric": "m",
             "value": 1, "threshold": 0.5, "rule": "r", "run_id": "20250630T060000Z-1"}  # fmt: skip
    append_alerts(paths["alerts_path"], [
        alert | {"message": f"alert {i}", "severity": "warning" if i % 2 else "critical"}
        for i in range(7)
    ])  # fmt: skip
    assert main(["--project-path", str(project)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[1] == (
        "  Data       1,000,123 transactions over 90 days (2025-04-01 .. 2025-06-29), "
        "fraud rate 0.66 %, 201 quarantined"
    )
    assert shown[2] == "  Model      AP 0.6100   ROC AUC 0.9700   CP@100 0.3200"
    assert shown[3] == "  Baseline   AP 0.3500   ROC AUC 0.9000   CP@100 0.2000"
    assert shown[5] == (
        "  Champion   fraud_model v3: v3 promoted (test_average_precision 0.6100 against "
        "champion v2 0.5800)"
    )
    assert shown[6].startswith("  Alerts     4 critical, 3 warning in the latest monitoring run")
    assert [line.split()[0] for line in shown[7:12]] == ["critical"] * 4 + ["warning"]
    assert shown[12].startswith("             ... and 2 more in ")
    assert len(shown) == 13
