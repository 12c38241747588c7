"""Parameters sized to the small synthetic histories of tests/monitoring/synthetic.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from payments_ml.config import load_parameters
from tests.conftest import PROJECT_ROOT
from tests.monitoring import synthetic as syn


@pytest.fixture(scope="session")
def shipped_monitoring_params() -> dict[str, Any]:
    return load_parameters(PROJECT_ROOT)["monitoring"]


def small(shipped: dict[str, Any]) -> dict[str, Any]:
    """The shipped rules and windows; a fixed "now" and windows of a few hundred rows."""
    params = copy.deepcopy(shipped)
    params["as_of"] = "2025-07-15T00:00:00Z"
    params["drift"]["min_rows"] = 200
    return params


@pytest.fixture
def monitoring_params(shipped_monitoring_params) -> dict[str, Any]:
    """:func:`small` parameters, a fresh copy per test."""
    return small(shipped_monitoring_params)


@pytest.fixture(scope="session")
def training_split() -> dict[str, Any]:
    """A training split of a 28-day history, as the training pipeline writes it: test is
    days 23-27, the gap 21-22, training 7-20 (so the last 7 days, 21-27, are the recent
    window)."""
    return split_of_28_days()


def split_of_28_days() -> dict[str, Any]:
    windows = {"fit": (7, 16), "valid": (17, 20), "gap": (21, 22), "test": (23, 27)}
    return {f"{name}_window": [syn.day(a), syn.day(b)] for name, (a, b) in windows.items()}
