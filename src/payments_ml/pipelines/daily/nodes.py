"""The daily pipeline's node: training, when it is due, as its own `kedro run`.

Kedro runs every node of a pipeline; whether tonight trains is known only at run time
(`payments_ml.training.schedule`). So the training stage runs as a run of its own,
`kedro run --pipelines training` in the same project and environment, joined to this
run's Ray cluster: the same MLflow run, model, registration and promotion as a weekly
training, and the scorer picks up a new champion by itself (docs/design.md, "Model
rollout").
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from typing import Any

from payments_ml.config import current_run
from payments_ml.training.schedule import is_training_due

logger = logging.getLogger(__name__)

# Parameters that belong to the night and not to a training run.
_NIGHT_ONLY = (
    "run_date",
    "data_gen.run_date",
    "ingest.run_date",
    "features.run_date",
    "monitoring.run_date",
)


def train_when_due(
    training: dict[str, Any], run_date: str | None, *ordering: Any
) -> dict[str, Any]:
    """Run the training stage when ``training.every_days`` have passed since the data of
    the latest registered model, or when ``training.force`` asks for it.

    Args:
        training: ``params:training``.
        run_date: The night (``--params run_date=YYYY-MM-DD``).
        ordering: Outputs of the night's stages: this node runs after them.

    Returns:
        The decision: ``run_date``, ``trained`` and, when it trained, its seconds.

    Raises:
        ValueError: No ``run_date``.
        RuntimeError: The training run failed (its output is above, in the log).
    """
    if not run_date:
        raise ValueError(
            "the daily pipeline runs one night: `kedro run --pipelines daily --params "
            "run_date=YYYY-MM-DD` (daily_ingest: on your file, also `ingest.path=...`)"
        )
    decision: dict[str, Any] = {"run_date": str(run_date), "trained": False}
    if not is_training_due(training, str(run_date)):
        return decision
    started = time.perf_counter()
    completed = subprocess.run(
        training_command(), cwd=current_run().project_path, env=_environment(), check=False
    )
    if completed.returncode:
        raise RuntimeError(
            f"the training run of {run_date} failed (exit {completed.returncode}; its log "
            "is above); rerun it alone with `kedro run --pipelines training`"
        )
    return decision | {"trained": True, "seconds": round(time.perf_counter() - started, 1)}


def training_command() -> list[str]:
    """`kedro run --pipelines training` in this run's project and environment, with its
    runtime parameters but those of the night."""
    run = current_run()
    command = [sys.executable, "-m", "kedro", "run", "--pipelines", "training"]
    if run.env:
        command += ["--env", run.env]
    params = {k: v for k, v in _flat(run.runtime_params).items() if k not in _NIGHT_ONLY}
    if params:
        command += ["--params", ",".join(f"{k}={v}" for k, v in sorted(params.items()))]
    return command


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _environment() -> dict[str, str]:
    """This process's environment, joined to this run's Ray cluster (the training run
    then neither starts a second one nor stops this one)."""
    import ray  # noqa: PLC0415

    env = dict(os.environ)
    if ray.is_initialized():
        env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    return env
