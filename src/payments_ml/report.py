"""The results of the last run, in a few lines: python -m payments_ml.report.

What `make run` prints before its links, read from the reporting files the pipelines
wrote (paths from the project's catalog in --env): the data (rows, days, fraud rate,
quarantine), the model against its baseline on the test window (average precision,
ROC AUC, card precision@k), the champion decision, and the alerts of the latest
monitoring run (the dashboard lists the same). A stage that has not run says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from payments_ml.monitoring.alerts import active_alerts
from payments_ml.structured_logging import filter_library_deprecations

MAX_ALERTS = 5  # listed one per line; the rest counted


def results(settings: dict[str, Any]) -> list[str]:
    """The lines of the results block, from ``project_settings(...)``."""
    paths = settings["datasets"]
    lines = ["Results"]
    lines += _data(_json(paths.get("data_gen_summary")))
    lines += _model(_json(paths.get("evaluation_report")))
    lines += _champion(_json(paths.get("model_promotion")))
    lines += _alerts(settings.get("alerts_path"))
    return lines


def _json(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text())


def _data(summary: dict[str, Any] | None) -> list[str]:
    if summary is None:
        return ["  Data       not generated yet (kedro run --pipelines data_gen)"]
    return [
        f"  Data       {summary['transactions']:,} transactions over {summary['days']} days "
        f"({summary['first_day']} .. {summary['last_day']}), fraud rate "
        f"{100 * summary['fraud_rate']:.2f} %, {summary['quarantined']:,} quarantined"
    ]


def _model(evaluation: dict[str, Any] | None) -> list[str]:
    if evaluation is None:
        return ["  Model      not trained yet (kedro run --pipelines training)"]
    metrics = evaluation["metrics"]
    k = next(
        (key.rsplit("_", 1)[-1] for key in metrics if key.startswith("test_card_precision_at_")),
        None,
    )

    def row(name: str, prefix: str) -> str:
        line = f"  {name:<10} AP {metrics[f'{prefix}average_precision']:.4f}"
        line += f"   ROC AUC {metrics[f'{prefix}roc_auc']:.4f}"
        if k is not None:
            line += f"   CP@{k} {metrics[f'{prefix}card_precision_at_{k}']:.4f}"
        return line

    rows, frauds = evaluation["test_rows"], evaluation["test_frauds"]
    window = f"  {'':<10} (test window: {rows:,} rows, {frauds} frauds)"
    return [row("Model", "test_"), row("Baseline", "baseline_"), window]


def _champion(promotion: dict[str, Any] | None) -> list[str]:
    if promotion is None:
        return []
    name, new = promotion["model_name"], promotion["new_version"]
    against = (
        f"champion v{promotion['champion_version']} {promotion['champion_value']:.4f}"
        if promotion.get("champion_version")
        else "no champion yet"
    )
    verdict = "promoted" if promotion["promoted"] else "not promoted"
    return [
        f"  Champion   {name} v{promotion['champion_after']}: v{new} {verdict} "
        f"({promotion['metric']} {promotion['new_value']:.4f} against {against})"
    ]


def _alerts(path: str | None) -> list[str]:
    if not path or not Path(path).is_file():
        return ["  Alerts     none logged yet (kedro run --pipelines monitoring)"]
    alerts = active_alerts(path)
    if not alerts:
        return ["  Alerts     none in the latest monitoring run"]
    by_severity = {s: sum(a["severity"] == s for a in alerts) for s in ("critical", "warning")}
    counts = ", ".join(f"{n} {s}" for s, n in by_severity.items() if n)
    lines = [f"  Alerts     {counts} in the latest monitoring run (also on the dashboard)"]
    ordered = sorted(alerts, key=lambda a: a["severity"] != "critical")
    lines += [f"             {a['severity']:<8} {a['message']}" for a in ordered[:MAX_ALERTS]]
    if len(alerts) > MAX_ALERTS:
        lines.append(f"             ... and {len(alerts) - MAX_ALERTS} more in {path}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m payments_ml.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--env", default="base", help="Kedro environment (default: base)")
    parser.add_argument("--project-path", default=".", help="the project (default: .)")
    args = parser.parse_args(argv)
    filter_library_deprecations()
    from payments_ml.config import project_settings  # noqa: PLC0415

    print("\n".join(results(project_settings(args.project_path, args.env))))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
