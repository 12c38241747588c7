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
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 7, "seed": 3, "num_threads": 1},
        lgb.Dataset(
            rows[FEATURES].to_numpy(float),
            rows["is_fraud"].to_numpy(float),
            feature_name=list(FEATURES),
        ),
        num_boost_round=20,
    )
    return FraudModel(
        booster=booster,
        features=list(FEATURES),
        defaults=dict(FEATURE_DEFAULTS),
        thresholds={"review": 0.05, "decline": 0.5},
        metadata={"registered_version": "7"},
    )


@pytest.fixture
def replay_day(tmp_path, snapshots, generated_transactions) -> dict[str, Any]:  # noqa: F811
    """A fresh store holding the nightly snapshot of a mid-history day; that day's rows."""
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    repo = make_repo(tmp_path, snapshots, "packed_sqlite")
    tx = generated_transactions
    days = fw.day_of(fw.to_ns(tx["event_timestamp"]))
    day = int(np.median(days))
    midnight = pd.Timestamp(day * fw.NS_DAY, tz="UTC")
    fs.load_day(repo["store"], snapshots["customer"], snapshots["merchant"], midnight)
    today = tx[days == day].sort_values("event_timestamp", kind="stable").reset_index(drop=True)
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
