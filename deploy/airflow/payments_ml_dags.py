"""payments-ml on Airflow 3: the nightly loop and the weekly training.

Two DAGs, each task one `kedro run` of the project with the project's own interpreter
(its virtual environment), never Airflow's: Airflow and the project pin different
libraries (Airflow 3.3 needs fastapi < 0.137, Ray Serve and Feast bring a later one), so
the DAG file imports nothing of the project and the tasks are shell commands.

- ``payments_nightly`` (every night, after midnight UTC, for the day before: the run's
  logical date is the day, ``run_date={{ ds }}``): one task, ``night``, one `kedro run
  --pipelines data_gen,features,monitoring`: the day's transactions and label reports,
  the labels resolved, the night's features, snapshots and online store, and monitoring
  (the ``daily`` pipeline but its training, which the weekly DAG does). One process per
  night, not three: a `kedro run` costs seconds to start, and the night is idempotent,
  so a retry reruns the whole night safely. Catchup on; nights run one at a time and in
  order (a night waits for the night before: the project refuses a night after a gap).
- ``payments_training`` (Mondays 03:00 UTC): ``wait_for_nightly`` (Sunday's night done)
  -> ``train`` (``kedro run --pipelines training`` in the cluster environment, logging
  to its MLflow tracking server; the model is registered and promoted if it beats the
  champion; its test window ends on the last night, ``training.test_end``) ->
  ``rollout`` (the registry alias names the promoted version; with
  ``PAYMENTS_ML_SCORER_URL``, waits until the scorer serves it: replicas follow the
  alias by themselves, docs/design.md "Model rollout").

Every task retries with exponential back-off; a task that fails for good appends a
critical alert to the project's alert log (``paths.alerts``), which the dashboard shows.
Every task is idempotent: a retried or backfilled night rewrites its partitions with the
same bytes.

Settings, from the environment of the Airflow workers (read when the file is parsed):

``PAYMENTS_ML_PROJECT``       the project folder (default: two folders above this file,
                              when it is used from the repository or symlinked)
``PAYMENTS_ML_PYTHON``        the project's interpreter (default: <project>/.venv/bin/python)
``PAYMENTS_ML_NIGHTLY_ENV``   Kedro environment of the nights (default: none, base + local)
``PAYMENTS_ML_TRAINING_ENV``  Kedro environment of the training (default: cluster; it reads
                              MLFLOW_TRACKING_URI, RAY_ADDRESS, REDIS_URL from the workers)
``PAYMENTS_ML_START_DATE``    first night of the schedule, YYYY-MM-DD (default 2025-06-01)
``PAYMENTS_ML_RETRIES``       retries of each task (default 2: after 5 then 10 minutes)
``PAYMENTS_ML_SCORER_URL``    the scorer the rollout waits for (default: none, not waited)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG, CronDataIntervalTimetable, CronTriggerTimetable

logger = logging.getLogger(__name__)

PROJECT = Path(os.environ.get("PAYMENTS_ML_PROJECT") or Path(__file__).resolve().parents[2])
PYTHON = os.environ.get("PAYMENTS_ML_PYTHON") or str(PROJECT / ".venv" / "bin" / "python")
NIGHTLY_ENV = os.environ.get("PAYMENTS_ML_NIGHTLY_ENV", "")
TRAINING_ENV = os.environ.get("PAYMENTS_ML_TRAINING_ENV", "cluster")
START_DATE = pendulum.parse(os.environ.get("PAYMENTS_ML_START_DATE", "2025-06-01"), tz="UTC")
RETRIES = int(os.environ.get("PAYMENTS_ML_RETRIES", "2"))
SCORER_URL = os.environ.get("PAYMENTS_ML_SCORER_URL", "")

# The night before the Monday of a training run: the last day whose night is built.
LAST_NIGHT = "{{ macros.ds_add(ds, -1) }}"
# Airflow's own Python settings must not leak into the project's interpreter.
_CLEAN = "unset PYTHONPATH PYTHONHOME VIRTUAL_ENV; "


def _kedro(pipeline: str, env: str, params: str) -> str:
    """The shell command of one `kedro run` of the project (``params`` templated)."""
    args = [PYTHON, "-m", "kedro", "run", "--pipelines", pipeline]
    if env:
        args += ["--env", env]
    return f'{_CLEAN}exec {shlex.join(args)} --params "{params}"'


def _alert_on_failure(context: dict[str, Any]) -> None:
    """Append a critical alert for the failed task to the project's alert log, with the
    project's interpreter (the line format and the path are the project's)."""
    ti = context["ti"]
    dag_env = TRAINING_ENV if ti.dag_id == "payments_training" else NIGHTLY_ENV
    logical = context.get("logical_date")
    command = [
        PYTHON, "-m", "payments_ml.orchestration", "--project", str(PROJECT), "--env",
        dag_env, "alert", "--dag", ti.dag_id, "--task", ti.task_id, "--logical-date",
        logical.isoformat() if logical else str(context.get("run_id")), "--try-number",
        str(ti.try_number), "--log-url", str(ti.log_url), "--run-date", str(context["ds"]),
        "--error", str(context.get("exception") or "")[:500],
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode:
        logger.error("Could not write the failure alert: %s", done.stderr[-2000:])
    else:
        logger.info("Failure alert written: %s", done.stdout.strip())


DEFAULT_ARGS = {
    "owner": "payments-ml",
    "retries": RETRIES,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(hours=1),
    "on_failure_callback": _alert_on_failure,
}

with DAG(
    dag_id="payments_nightly",
    description="The night of the logical date: data, labels, features + online store, monitoring",
    # Intervals of a day from midnight UTC: the run of day D starts once D is over.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS | {"depends_on_past": True},
    dagrun_timeout=dt.timedelta(hours=6),
    tags=["payments-ml"],
    doc_md=__doc__,
) as nightly:
    BashOperator(
        task_id="night",
        bash_command=_kedro("data_gen,features,monitoring", NIGHTLY_ENV, "run_date={{ ds }}"),
        cwd=str(PROJECT),
        execution_timeout=dt.timedelta(hours=4),
    )

with DAG(
    dag_id="payments_training",
    description="Weekly: training on the nights so far, promotion, the scorer follows",
    schedule=CronTriggerTimetable("0 3 * * 1", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    dagrun_timeout=dt.timedelta(hours=12),
    tags=["payments-ml"],
    doc_md=__doc__,
) as training:
    wait = ExternalTaskSensor(
        task_id="wait_for_nightly",
        external_dag_id="payments_nightly",
        external_task_id="night",
        # The nightly run of the day before (its logical date is that day, 00:00 UTC).
        execution_date_fn=lambda logical_date, **_: (
            logical_date.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
        ),
        mode="reschedule",
        poke_interval=600,
        timeout=dt.timedelta(hours=8).total_seconds(),
        retries=0,
    )
    train = BashOperator(
        task_id="train",
        bash_command=_kedro(
            "training", TRAINING_ENV, f"run_date={LAST_NIGHT},training.test_end={LAST_NIGHT}"
        ),
        cwd=str(PROJECT),
        execution_timeout=dt.timedelta(hours=8),
    )
    rollout_args = [PYTHON, "-m", "payments_ml.orchestration", "--project", str(PROJECT)]
    rollout_args += ["--env", TRAINING_ENV, "rollout"]
    if SCORER_URL:
        rollout_args += ["--scorer-url", SCORER_URL, "--timeout", "120"]
    rollout = BashOperator(
        task_id="rollout",
        bash_command=_CLEAN + "exec " + shlex.join(rollout_args),
        cwd=str(PROJECT),
    )
    wait >> train >> rollout
