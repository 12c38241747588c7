"""When a daily run retrains: every ``training.every_days`` days of data, or when forced."""

from __future__ import annotations

from datetime import date

import pytest

from payments_ml.training.schedule import is_training_due, last_trained_day, training_due

D = date(2025, 6, 12)


@pytest.mark.parametrize(
    ("last", "run", "every", "force", "due"),
    [
        (None, D, 7, False, True),  # no model yet
        (D, date(2025, 6, 18), 7, False, False),  # 6 days of new data
        (D, date(2025, 6, 19), 7, False, True),  # 7 days: due
        (D, date(2025, 7, 30), 7, False, True),  # long overdue
        (D, D, 7, False, False),  # the same day again
        (D, D, 1, False, False),
        (D, date(2025, 6, 13), 1, False, True),  # every day
        (D, date(2025, 6, 1), 7, False, False),  # a backfill before the model's data
        (D, D, 7, True, True),  # asked for
        (D, date(2025, 6, 1), 30, True, True),
    ],
)
def test_training_is_due_every_n_days_of_data_or_when_forced(last, run, every, force, due):
    assert training_due(last, run, every, force) is due


@pytest.mark.parametrize("every", [0, -7, 1.5, True, "7"])
def test_every_days_must_be_a_positive_integer(every):
    with pytest.raises(
        ValueError, match=f"training.every_days must be a positive integer or null, got {every!r}"
    ):
        training_due(D, D, every)


def test_without_every_days_training_runs_only_when_asked():
    assert training_due(None, D, None) is False  # not even without a model
    assert training_due(D, date(2026, 1, 1), None) is False
    assert training_due(D, D, None, force=True) is True


@pytest.fixture
def client(tmp_path):
    """A real MLflow registry (SQLite) without any model."""
    from mlflow import MlflowClient  # noqa: PLC0415

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register(client, tmp_path, data_window: str | None) -> str:
    if not client.search_registered_models("name = 'fraud_model'"):
        client.create_registered_model("fraud_model")
    tags = {} if data_window is None else {"data_window": data_window}
    source = (tmp_path / "model").as_uri()
    return client.create_model_version("fraud_model", source=source, tags=tags).version


def test_the_last_training_day_is_the_end_of_the_latest_versions_data(client, tmp_path):
    training = {"registry": {"model_name": "fraud_model"}, "every_days": 7, "force": False}
    assert last_trained_day("fraud_model", client) is None
    assert is_training_due(training, "2025-06-12", client) is True  # no model yet

    _register(client, tmp_path, "2025-04-01..2025-06-01")
    _register(client, tmp_path, "2025-04-10..2025-06-10")  # the latest, promoted or not
    assert last_trained_day("fraud_model", client) == date(2025, 6, 10)
    assert is_training_due(training, "2025-06-16", client) is False
    assert is_training_due(training, date(2025, 6, 17), client) is True
    assert is_training_due(training | {"force": True}, "2025-06-11", client) is True


def test_a_version_without_its_data_window_says_how_to_go_on(client, tmp_path):
    version = _register(client, tmp_path, None)
    with pytest.raises(ValueError, match=f"version {version} has no data_window tag.*force=true"):
        last_trained_day("fraud_model", client)
