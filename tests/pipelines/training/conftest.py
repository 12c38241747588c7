"""A small generated history with features, and training parameters sized to it."""

from __future__ import annotations

import copy
import datetime as dt
import os
from typing import Any

import pandas as pd
import pytest

from payments_ml.config import load_parameters
from tests.conftest import PROJECT_ROOT

DELAY = 7


@pytest.fixture(scope="session")
def training_set(base_params) -> pd.DataFrame:
    """40 days of 2 000 customers (about 90 k transactions) with every feature."""
    from payments_ml.contracts import split_by_contract  # noqa: PLC0415
    from payments_ml.data_gen import generator as g  # noqa: PLC0415
    from payments_ml.features import windows as fw  # noqa: PLC0415

    params = copy.deepcopy(base_params) | {"n_customers": 2000, "n_merchants": 300, "n_regions": 8}
    valid, _ = split_by_contract(g.generate_days(g.world_of(params), dt.date(2025, 4, 1), 40))
    return fw.feature_rows(valid.reset_index(drop=True), fw.merchant_daily(valid, DELAY), DELAY)


@pytest.fixture
def training_params(tmp_path) -> dict[str, Any]:
    """conf/base training parameters on a 40-day history, with a two-trial search."""
    params = load_parameters(PROJECT_ROOT)["training"]
    params.update(
        train_days=21,
        valid_days=5,
        delay_days=DELAY,
        test_days=7,
        num_samples=2,
        num_boost_round=60,
        early_stopping_rounds=15,
        report_every=5,
        card_precision_k=20,
        tune_storage_path=str(tmp_path / "tune"),
    )
    params["asha"]["grace_period"] = 2
    return params


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A temporary MLflow tracking store and registry (SQLite), restored afterwards.

    mlflow.set_*_uri also export MLFLOW_*_URI to the environment, which later
    subprocesses (the kedro CLI tests) would inherit: monkeypatch restores it.
    """
    import mlflow  # noqa: PLC0415

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.delenv(name)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment(
        "payments-ml", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment)
    yield mlflow
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])
