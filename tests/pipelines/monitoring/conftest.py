"""Parameters sized to the small synthetic histories of tests/monitoring/synthetic.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from payments_ml.config import load_parameters
from tests.conftest import PROJECT_ROOT


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
def split_params() -> dict[str, Any]:
    """The shipped training split, shortened to a 28-day history: test is days 23-27,
    the gap 21-22, training 7-20 (so the last 7 days, 21-27, are the recent window)."""
    params = load_parameters(PROJECT_ROOT)["training"]
    params.update(train_days=14, valid_days=4, delay_days=2, test_days=5, test_end=None)
    return params
