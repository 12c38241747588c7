"""What a scheduler runs besides `kedro run`: the alert of a failed task, and the check
that the registry and the scorer follow the champion after a training run.

A scheduler (deploy/airflow's DAGs) runs in its own environment, with its own libraries:
it calls these commands with the project's interpreter, so the alert line is written by
the same code (`monitoring.alerts`) and to the same log (``paths.alerts`` of the run's
environment) as monitoring's alerts, and the dashboard shows it::

    python -m payments_ml.orchestration alert --project . --dag payments_nightly \
        --task features --logical-date 2025-06-11T00:00:00+00:00 --try-number 3 \
        --log-url http://airflow:8080/... [--env cluster] [--run-date 2025-06-11]
    python -m payments_ml.orchestration rollout --project . [--env cluster] \
        [--scorer-url http://127.0.0.1:8000 --timeout 60]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import fsspec

from payments_ml.config import project_settings
from payments_ml.monitoring.alerts import Alert, append_alerts, new_run_id

logger = logging.getLogger(__name__)

TASK_FAILURE_METRIC = "scheduled_task_failure"


def task_failure_alert(
    *,
    dag_id: str,
    task_id: str,
    logical_date: str,
    try_number: int,
    log_url: str,
    run_date: str | None = None,
    error: str | None = None,
) -> Alert:
    """The critical alert of a scheduled task that failed for good (its retries spent)."""
    message = (
        f"{dag_id}.{task_id} failed for {logical_date} after {try_number} tries: "
        f"{error or 'see its log'}; log: {log_url}"
    )
    context = {
        "dag_id": dag_id,
        "task_id": task_id,
        "logical_date": logical_date,
        "try_number": try_number,
        "log_url": log_url,
    }
    if error:
        context["error"] = error
    return Alert(
        severity="critical",
        metric=TASK_FAILURE_METRIC,
        value=float(try_number),
        threshold=None,
        rule=TASK_FAILURE_METRIC,
        message=message,
        day=run_date,
        context=context,
    )


def report_task_failure(
    project_path: str | Path, env: str, alert: Alert, now: dt.datetime | None = None
) -> str:
    """Append ``alert`` to the alert log of ``env`` (``paths.alerts``) as a run of its own.

    Returns:
        The alert log's path.
    """
    now = now or dt.datetime.now(dt.UTC)
    path = project_settings(project_path, env)["alerts_path"]
    append_alerts(path, [alert.record(new_run_id(now), now)])
    return path


def champion_version(project_path: str | Path, env: str) -> dict[str, Any]:
    """What the scorer will serve: the version ``serving.model_uri``'s alias names in the
    registry, beside the last training run's promotion decision (model_promotion.json).

    Raises:
        ValueError: When ``serving.model_uri`` is not ``models:/<name>@<alias>``, or the
            alias does not name the champion the last promotion decided.
    """
    from mlflow import MlflowClient  # noqa: PLC0415

    settings = project_settings(project_path, env)
    model_uri = settings["settings"]["model_uri"]
    name, _, alias = model_uri.removeprefix("models:/").partition("@")
    if not model_uri.startswith("models:/") or not alias:
        raise ValueError(
            f"serving.model_uri must name an alias (models:/<name>@<alias>) for a rollout "
            f"to follow, got {model_uri!r}"
        )
    with fsspec.open(settings["datasets"]["model_promotion"], "r") as file:
        promotion = json.load(file)
    client = MlflowClient(settings["tracking_uri"], settings["registry_uri"])
    version = str(client.get_model_version_by_alias(name, alias).version)
    if version != str(promotion["champion_after"]):
        raise ValueError(
            f"{model_uri} names version {version}, but the last promotion decided "
            f"{promotion['champion_after']}: was the alias moved by hand since? Check "
            "docs/runbook.md, 'Rolling back the champion'"
        )
    return {"model_uri": model_uri, "champion_version": version, "promotion": promotion}


def wait_for_scorer(url: str, version: str, timeout_s: float, every_s: float = 2.0) -> str:
    """Wait until the scorer at ``url`` answers ``/health`` with ``model_version``
    ``version`` (each replica switches by itself, docs/design.md "Model rollout").

    Returns:
        The version the scorer reported.

    Raises:
        TimeoutError: When it still serves another version (or does not answer) after
            ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    seen: Any = None
    while True:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=5) as answer:
                seen = json.load(answer).get("model_version")
        except OSError as error:
            seen = f"no answer ({error})"
        if str(seen) == version:
            return version
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the scorer at {url} still serves {seen} {timeout_s:g} s after the "
                f"champion became version {version}; check its /health 'model.error'"
            )
        time.sleep(every_s)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m payments_ml.orchestration")
    parser.add_argument("--project", default=".", help="the Kedro project's folder")
    parser.add_argument("--env", default="", help="Kedro environment ('' : base + local)")
    commands = parser.add_subparsers(dest="command", required=True)
    alert = commands.add_parser("alert", help="append a failed task's critical alert")
    for name in ("--dag", "--task", "--logical-date", "--log-url"):
        alert.add_argument(name, required=True)
    alert.add_argument("--try-number", type=int, required=True)
    alert.add_argument("--run-date")
    alert.add_argument("--error")
    rollout = commands.add_parser("rollout", help="check the champion (and the scorer)")
    rollout.add_argument("--scorer-url", help="wait until this scorer serves the champion")
    rollout.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line: ``alert`` or ``rollout``; prints one JSON line of what it did."""
    args = _parser().parse_args(argv)
    env = args.env or "base"
    if args.command == "alert":
        alert = task_failure_alert(
            dag_id=args.dag,
            task_id=args.task,
            logical_date=args.logical_date,
            try_number=args.try_number,
            log_url=args.log_url,
            run_date=args.run_date,
            error=args.error,
        )
        done = {"alerts_path": report_task_failure(args.project, env, alert)}
    else:
        done = champion_version(args.project, env)
        if args.scorer_url:
            done["scorer_version"] = wait_for_scorer(
                args.scorer_url, done["champion_version"], args.timeout
            )
    sys.stdout.write(json.dumps(done, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
