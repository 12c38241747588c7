"""Fault switches for scorer tests: a model that fails or stalls while a file exists.

The scorer takes its model from a loader, so a test can hand a replica a model that
misbehaves on demand; the replica runs in another process, so the switch is a file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from payments_ml.training.model import FraudModel


def switchable_model(model: FraudModel, switches: Path) -> Any:
    """``model``, except that while ``switches/poison`` exists it cannot score a batch
    holding a transaction at 23:xx UTC (a bug that hits some transactions), and while
    ``switches/slow`` exists each batch takes the seconds written in that file."""

    class Switchable:  # defined here: pickled by value into the replicas
        def __init__(self, inner: FraudModel) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            if name == "inner":  # while unpickling, before __init__'s attributes exist
                raise AttributeError(name)
            return getattr(self.inner, name)

        def matrix(self, features: Any) -> np.ndarray:
            slow = switches / "slow"
            if slow.exists():
                time.sleep(float(slow.read_text() or 0.5))
            if (switches / "poison").exists() and (np.asarray(features["hour_of_day"]) == 23).any():
                raise ValueError("poisoned: this model cannot score transactions at 23:xx")
            return self.inner.matrix(features)

    return Switchable(model)
