"""One log line per finished Tune trial: ``Trial 3/10: valid_average_precision 0.4725,
best 0.5104``, in place of Tune's own tables (the run's log file keeps those)."""

from __future__ import annotations

import logging
from typing import Any

from ray import tune

logger = logging.getLogger(__name__)


class TrialProgress(tune.Callback):
    """Counts the finished trials of a search and logs each with the best value so far."""

    def __init__(self, total: int, metric: str) -> None:
        self.total, self.metric = total, metric
        self.done = 0
        self.best: float | None = None

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        value = (trial.last_result or {}).get(self.metric)
        if value is not None and (self.best is None or value > self.best):
            self.best = value
        self._log(f"{self.metric} {_number(value)}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._log("failed (its error is in the run log)")

    def _log(self, outcome: str) -> None:
        self.done += 1
        logger.info("Trial %d/%d: %s, best %s", self.done, self.total, outcome, _number(self.best))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
