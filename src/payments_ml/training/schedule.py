"""When to retrain: every ``training.every_days`` days of new data, or when asked.

A daily run (features every night) calls `is_training_due` to decide whether tonight
also trains. Time is counted in data days, not on the wall clock: the date of the last
training is the last day of the data the latest registered version was trained on (its
``data_window`` tag), and ``run_date`` is the day the run processes, so a backfill of
past days decides the same way as the nights did.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

logger = logging.getLogger(__name__)


def training_due(
    last_trained_day: date | None, run_date: date, every_days: int | None, force: bool = False
) -> bool:
    """Whether the run of ``run_date`` trains a new model.

    Args:
        last_trained_day: Last day of the data the latest model saw; None: no model yet.
        run_date: The data day the run processes.
        every_days: Days of data between two trainings (``training.every_days``); None:
            only when asked.
        force: Train whatever the dates say (``training.force``).

    Returns:
        True when forced; with ``every_days``, when there is no model yet, or when
        ``run_date`` is at least ``every_days`` days after ``last_trained_day``; False
        for an earlier day (a backfill before the model's data: it has seen newer days).

    Raises:
        ValueError: ``every_days`` is not a positive integer.
    """
    if every_days is None or force:
        return force
    if isinstance(every_days, bool) or not isinstance(every_days, int) or every_days < 1:
        raise ValueError(
            f"training.every_days must be a positive integer or null, got {every_days!r}"
        )
    if last_trained_day is None:
        return True
    return (run_date - last_trained_day).days >= every_days


def last_trained_day(model_name: str, client: Any = None) -> date | None:
    """Last day of the data the latest registered version of ``model_name`` was trained
    on (the end of its ``data_window`` tag); None when no version is registered.

    Args:
        model_name: The registered model (``training.registry.model_name``).
        client: An ``mlflow.MlflowClient``; default: one on the current tracking URI.

    Raises:
        ValueError: The latest version has no readable ``data_window`` tag.
    """
    from mlflow import MlflowClient  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    client = client or MlflowClient()
    try:
        versions = client.search_model_versions(
            f"name = '{model_name}'", order_by=["version_number DESC"], max_results=1
        )
    except MlflowException:  # no such registered model yet
        return None
    if not versions:
        return None
    latest = versions[0]
    window = latest.tags.get("data_window", "")
    try:
        return date.fromisoformat(window.split("..")[-1])
    except ValueError:
        raise ValueError(
            f"{model_name} version {latest.version} has no data_window tag "
            f"(got {window!r}); tag it 'YYYY-MM-DD..YYYY-MM-DD', or run with "
            "--params training.force=true"
        ) from None


def is_training_due(training: dict[str, Any], run_date: date | str, client: Any = None) -> bool:
    """`training_due` for a run of ``run_date`` with the ``training`` parameters (the
    registry's model name, ``every_days``, ``force``); logs the decision.

    Args:
        training: ``params:training``.
        run_date: The data day the run processes (a date or ``YYYY-MM-DD``).
        client: An ``mlflow.MlflowClient``; default: one on the current tracking URI.
    """
    day = date.fromisoformat(run_date) if isinstance(run_date, str) else run_date
    every_days, force = training.get("every_days", 7), bool(training.get("force", False))
    manual = force or every_days is None
    last = None if manual else last_trained_day(training["registry"]["model_name"], client)
    due = training_due(last, day, every_days, force)
    logger.info(
        "Training %s for %s: %s",
        "runs" if due else "skipped",
        day,
        "forced (training.force)"
        if force
        else "training.every_days is null: only when asked (training.force)"
        if every_days is None
        else "no model registered yet"
        if last is None
        else f"latest model's data ends {last}, every {every_days} day(s)",
    )
    return due
