"""FraudModel: defaults for missing input, decisions, reasons, and its round trip."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from payments_ml.training.model import FraudModel


@pytest.fixture(scope="module")
def model() -> FraudModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=2000) > 1.2).astype(float)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_leaves": 7, "seed": 1},
        lgb.Dataset(x, y, feature_name=["a", "b", "c"]),
        num_boost_round=30,
    )
    return FraudModel(
        booster=booster,
        features=["a", "b", "c"],
        defaults={"a": 0.0, "b": None, "c": 5.0},
        thresholds={"review": 0.2, "decline": 0.7},
    )


def test_missing_columns_and_nulls_take_their_defaults(model):
    rows = pd.DataFrame({"a": [1.0, None], "b": [2.0, None]})
    matrix = model.matrix(rows)
    np.testing.assert_array_equal(matrix[:, 0], [1.0, 0.0])
    assert matrix[0, 1] == 2.0 and np.isnan(matrix[1, 1])  # None: missing for LightGBM
    np.testing.assert_array_equal(matrix[:, 2], [5.0, 5.0])


def test_decisions_follow_the_thresholds(model):
    decisions = model.decide(np.array([0.0, 0.19, 0.2, 0.69, 0.7, 1.0]))
    assert decisions.tolist() == ["approve", "approve", "review", "review", "decline", "decline"]


def test_reasons_are_the_largest_positive_contributions(model):
    rows = pd.DataFrame({"a": [3.0], "b": [0.0], "c": [0.0]})
    reasons = model.reasons(rows, top_k=2)[0]
    assert reasons[0]["feature"] == "a" and reasons[0]["value"] == 3.0
    assert all(r["contribution"] > 0 for r in reasons)
    contributions = model.contributions(model.matrix(rows))[0]
    assert reasons[0]["contribution"] == pytest.approx(contributions[0], abs=1e-6)


def test_path_contributions_sum_to_the_raw_score(model):
    """Root values + contributions = the booster's raw score, row by row."""
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(200, 3))
    matrix[::7, 1] = np.nan  # missing values follow the default direction
    contributions = model.contributions(matrix)
    _, bias = model._paths
    raw = model.booster.predict(matrix, raw_score=True)
    np.testing.assert_allclose(bias + contributions.sum(axis=1), raw, rtol=1e-9, atol=1e-9)
    # The feature that drives the label gets the most credit on average.
    assert np.abs(contributions).mean(axis=0).argmax() == 0


def test_save_and_load_give_the_same_model(model, tmp_path):
    model.save(tmp_path / "m")
    loaded = FraudModel.load(tmp_path / "m")
    rows = pd.DataFrame({"a": [0.5, 2.0], "b": [1.0, -1.0]})
    np.testing.assert_allclose(loaded.predict_proba(rows), model.predict_proba(rows), rtol=1e-12)
    assert loaded.defaults == model.defaults and loaded.thresholds == model.thresholds


def test_an_inconsistent_folder_is_refused(model, tmp_path):
    model.save(tmp_path / "m")
    spec = (tmp_path / "m" / "spec.json").read_text().replace('"c"', '"z"')
    (tmp_path / "m" / "spec.json").write_text(spec)
    with pytest.raises(ValueError, match="differ from the spec"):
        FraudModel.load(tmp_path / "m")
