"""A Feast repository with the snapshot of one day loaded, and a small trained model."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from payments_ml.features import windows as fw
from payments_ml.features.definitions import FEATURE_DEFAULTS, FEATURES
from payments_ml.training.model import FraudModel
from tests.feature_store.conftest import make_repo, snapshots  # noqa: F401 (fixture)


@pytest.fixture(scope="session")
def small_model(generated_transactions) -> FraudModel:
    """LightGBM on the generated history's features (enough to score, not to be good)."""
    tx = generated_transactions
    rows = fw.feature_rows(tx, fw.merchant_daily(tx, 7), 7)
    return fraud_model(
        rows[FEATURES].to_numpy(float),
        rows["is_fraud"].to_numpy(float),
        thresholds={"review": 0.05, "decline": 0.5},
        version="7",
        rounds=20,
        num_leaves=7,
        seed=3,
    )


def fraud_model(
    x: np.ndarray, y: np.ndarray, *, thresholds: dict, version: str, rounds: int, **params: Any
) -> FraudModel:
    """A LightGBM ``FraudModel`` over the real feature list, trained on ``x``, ``y`` with
    ``params`` (one thread, quiet), registered as ``version``."""
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, **params},
        lgb.Dataset(x, y, feature_name=list(FEATURES)),
        num_boost_round=rounds,
    )
    return FraudModel(
        booster=booster,
        features=list(FEATURES),
        defaults=dict(FEATURE_DEFAULTS),
        thresholds=thresholds,
        metadata={"registered_version": version},
    )


def mid_history_store(root: Any, snapshots: dict, transactions: pd.DataFrame) -> dict[str, Any]:  # noqa: F811
    """A packed SQLite store under ``root`` holding the nightly snapshot of the history's
    median day (the repo of `make_repo`, plus ``midnight`` and that day's ``day_rows``)."""
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    repo = make_repo(root, snapshots, "packed_sqlite")
    days = fw.day_of(fw.to_ns(transactions["event_timestamp"]))
    day = int(np.median(days))
    midnight = pd.Timestamp(day * fw.NS_DAY, tz="UTC")
    fs.load_day(repo["store"], snapshots["customer"], snapshots["merchant"], midnight)
    return {**repo, "midnight": midnight, "day_rows": transactions[days == day]}


@pytest.fixture
def replay_day(tmp_path, snapshots, generated_transactions) -> dict[str, Any]:  # noqa: F811
    """A fresh store holding the nightly snapshot of a mid-history day; that day's rows."""
    repo = mid_history_store(tmp_path, snapshots, generated_transactions)
    today = repo["day_rows"].sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    expected = snapshots["training_set"].set_index("transaction_id").loc[today["transaction_id"]]
    return {**repo, "today": today, "expected": expected.reset_index()}


def stop_serve(timeout_s: float = 60) -> None:
    """Shut Serve down and wait until its controller is gone.

    ``serve.shutdown`` kills the controller asynchronously; a ``serve.start`` right
    after it can find the dying controller by name and fail with ActorDiedError.
    """
    import time  # noqa: PLC0415

    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    serve.shutdown()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
        except ValueError:
            return
        time.sleep(0.2)
    raise TimeoutError("the Serve controller was still alive after serve.shutdown()")


@pytest.fixture(scope="module")
def registry(tmp_path_factory, small_model) -> Any:
    """A real MLflow registry (SQLite in a temporary folder) holding ``fraud_model``
    versions 1 and 2 (the small model with other thresholds), ``champion`` on 1.

    mlflow.set_*_uri (the loader calls them too) also export MLFLOW_*_URI, which later
    subprocesses would inherit: the URIs and the environment are restored afterwards.
    """
    import copy  # noqa: PLC0415
    import os  # noqa: PLC0415

    import mlflow  # noqa: PLC0415

    from payments_ml.training.model import log_fraud_model  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("registry")
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    env = {name: os.environ.get(name) for name in names}
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    example = pd.DataFrame({name: [0.0, 1.0, 2.0] for name in FEATURES})
    try:
        experiment = mlflow.create_experiment(
            "serving-tests", artifact_location=(folder / "artifacts").as_uri()
        )
        for thresholds in ({"review": 0.05, "decline": 0.5}, {"review": 0.04, "decline": 0.4}):
            model = copy.copy(small_model)
            model.thresholds, model.metadata = thresholds, {}
            with mlflow.start_run(experiment_id=experiment):
                log_fraud_model(model, example, registered_model_name="fraud_model")
        client = mlflow.MlflowClient(uri, uri)
        client.set_registered_model_alias("fraud_model", "champion", "1")
        yield {"uri": uri, "client": client, "folder": folder}
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
