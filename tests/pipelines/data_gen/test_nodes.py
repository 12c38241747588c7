"""What a failing run of days' Ray task tells the user."""

from __future__ import annotations

import datetime as dt

import pytest

from payments_ml.pipelines.data_gen import nodes
from payments_ml.structured_logging import error_partition


def test_a_failing_day_names_its_partition():
    """The error a day's task raises carries the day (the failure log shows it)."""
    with pytest.raises(AttributeError) as raised:
        nodes._generate_days._function(None, [dt.date(2025, 6, 11)])  # no world: it fails
    assert error_partition(raised.value) == "event_date=2025-06-11"
