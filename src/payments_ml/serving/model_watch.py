"""A replica follows its model's registry alias (docs/design.md, "Model rollout").

Every ``serving.model_watch_s`` seconds a background thread asks the registry which
version the alias (``champion``) names. When it names another version than the one in
use (training promoted one, or someone moved it back: a rollback), the thread loads that
version, warms it, and hands it over in one reference assignment: requests already
scoring finish on the model they started with, the next ones use the new one, and none is
refused. A load that fails keeps the model in use; the error stays visible in /health
until a load succeeds or the alias moves back. A model pinned to a version
(``models:/fraud_model/3``) is not watched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from payments_ml.training.model import FraudModel

logger = logging.getLogger(__name__)


class ModelSource(Protocol):
    """Where a watched model comes from (`payments_ml.serving.app.MlflowModelLoader`)."""

    reference: str  # what is watched, e.g. ``models:/fraud_model@champion``

    def version_now(self) -> str:
        """The version the reference names now."""

    def load(self, version: str) -> FraudModel:
        """That version of the model."""


def warm(model: FraudModel) -> FraudModel:
    """Score one row of defaults, so that the work a model does on its first call (its
    decision-path tables) is done here, off the request path."""
    row = model.matrix({name: [np.nan] for name in model.features})
    model.predict_matrix(row)
    model.explain(row)
    return model


class ModelWatch:
    """The model a replica serves, kept on the version its alias names.

    Args:
        source: Resolves the alias and loads a version.
        model: The model in use when the watch starts.
        interval_s: Seconds between two looks at the alias.
        on_switch: Called with the new model, from the watch's thread, once it is
            warm; it installs the model where requests read it.
        on_failure: Called with the version that could not be loaded (for metrics).
        start: Start the background thread (tests call `check` themselves).
    """

    def __init__(
        self,
        source: ModelSource,
        model: FraudModel,
        interval_s: float,
        on_switch: Callable[[FraudModel], None],
        on_failure: Callable[[str], None] = lambda version: None,
        *,
        start: bool = True,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(
                f"serving.model_watch_s must be > 0 seconds, got {interval_s}; "
                "null turns the watch off"
            )
        self.source = source
        self.model = model
        self.interval_s = interval_s
        self.on_switch = on_switch
        self.on_failure = on_failure
        self.switches = 0
        self.error: str | None = None
        self.checked_at: float | None = None
        self.switched_at = time.time()
        self._lock = threading.Lock()  # one check at a time (the thread, or a test)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-watch", daemon=True)
        if start:
            self._thread.start()

    def check(self) -> bool:
        """Look at the alias once; load and switch when it names another version.

        Returns:
            True when the model in use changed.
        """
        with self._lock:
            try:
                version = self.source.version_now()
            except Exception as error:  # the registry is down: keep serving
                self._failed(None, f"could not read {self.source.reference}: {error}")
                return False
            self.checked_at = time.time()
            if version == self.model.version:
                self.error = None
                return False
            return self._switch_to(version)

    def _switch_to(self, version: str) -> bool:
        started = time.perf_counter()
        try:
            model = warm(self.source.load(version))
        except Exception as error:
            self._failed(
                version,
                f"could not load version {version} ({type(error).__name__}: {error}); "
                f"still serving version {self.model.version}",
            )
            self.on_failure(version)
            return False
        previous = self.model
        self.on_switch(model)
        self.model = model
        self.switches += 1
        self.switched_at, self.error = time.time(), None
        logger.info(
            "%s moved: serving version %s instead of %s (loaded in %.2f s)",
            self.source.reference,
            version,
            previous.version,
            time.perf_counter() - started,
        )
        return True

    def _failed(self, version: str | None, message: str) -> None:
        if message != self.error:  # once per distinct failure, not every interval
            logger.error("Model watch: %s", message, exc_info=version is not None)
        self.error = message

    def status(self) -> dict[str, Any]:
        """What /health and the dashboard show about the model in use."""
        return {
            "version": self.model.version,
            "source": self.source.reference,
            "watch_s": self.interval_s,
            "since": _iso(self.switched_at),
            "switches": self.switches,
            "checked_at": _iso(self.checked_at),
            "error": self.error,
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception:  # a watch never dies (on_switch failed, say)
                logger.exception("Model watch: the check failed")

    def stop(self) -> None:
        self._stop.set()


def fixed_status(model: FraudModel, source: str, since: float) -> dict[str, Any]:
    """The status of a model that is not watched (pinned to a version, or the watch off)."""
    return {
        "version": model.version,
        "source": source,
        "watch_s": None,
        "since": _iso(since),
        "switches": 0,
        "checked_at": None,
        "error": None,
    }


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
