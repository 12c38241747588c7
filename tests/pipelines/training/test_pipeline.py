"""The training pipeline end to end: two Tune trials, MLflow runs, registry, promotion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from payments_ml.pipelines.training import create_pipeline
from payments_ml.pipelines.training import nodes as n
from payments_ml.training.model import FraudModel, load_fraud_model

OUTPUTS = [
    "fraud_model",
    "training_metrics",
    "evaluation_report",
    "model_promotion",
    "pr_curve_plot",
    "score_distribution_plot",
]


class KeptDataset(MemoryDataset):
    """Keeps its data after the run (the runner releases intermediate datasets)."""

    def _release(self) -> None:
        pass


def run_pipeline(training_set: pd.DataFrame, params: dict) -> dict:
    catalog = DataCatalog(
        {
            "training_set@pandas": MemoryDataset(training_set),
            "transaction_labels": MemoryDataset(pd.DataFrame()),  # no labels feed
            "params:training": MemoryDataset(params),
            **{name: KeptDataset(copy_mode="assign") for name in OUTPUTS},
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return {name: catalog.load(name) for name in OUTPUTS}


@pytest.mark.slow
def test_two_trial_run_logs_nested_runs_registers_and_promotes(
    ray_session, training_set, training_params, mlflow_store
):
    mlflow = mlflow_store
    with mlflow.start_run() as parent:
        out = run_pipeline(training_set, training_params)

    client = mlflow.MlflowClient()
    trials = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(trials) == 2
    assert all("valid_average_precision" in t.data.metrics for t in trials)
    assert {"learning_rate", "scale_pos_weight"} <= set(trials[0].data.params)

    evaluation = out["evaluation_report"]
    assert evaluation["known_fraud_lookback_days"] == training_params["known_fraud_lookback_days"]
    assert evaluation["test_rows_dropped_known_defrauded"] >= 0
    assert 0 <= evaluation["test_share_dropped_known_defrauded"] < 1
    report = evaluation["metrics"]
    for key in ("test_average_precision", "test_roc_auc", "test_card_precision_at_20"):
        assert 0 < report[key] <= 1 and 0 < report[key.replace("test_", "baseline_")] <= 1
    assert out["training_metrics"]["test_average_precision"]["value"] == pytest.approx(
        report["test_average_precision"], abs=1e-6
    )
    assert out["model_promotion"]["promoted"] and out["model_promotion"]["new_version"] == "1"

    # What serving loads is what was trained: same scores, same thresholds.
    champion = load_fraud_model("models:/fraud_model@champion")
    assert champion.version == "1"
    sample = training_set.sample(300, random_state=1)
    np.testing.assert_allclose(
        champion.predict_proba(sample), out["fraud_model"].predict_proba(sample), rtol=1e-12
    )
    assert champion.thresholds == out["fraud_model"].thresholds
    run = client.get_run(parent.info.run_id)
    assert run.data.tags["promotion"] == "promoted" and len(run.data.tags["git_commit"]) > 0
    _check_description(client, out, report)
    _check_plots(out, report)


def _check_description(client, out: dict, report: dict) -> None:
    """Version 1's registry description: windows, metrics beside the baseline, decision."""
    description = client.get_model_version("fraud_model", "1").description
    lines = description.splitlines()
    assert lines[0].startswith("**Promoted to champion.** No champion yet: v1")
    metadata = out["fraud_model"].metadata
    for window, key in (("train", "fit_window"), ("test", "test_window")):
        first, last = metadata[key]
        assert any(line.startswith(f"| {window} | {first} to {last} |") for line in lines)
    assert "| metric | v1 | baseline |" in lines  # no champion to compare with yet
    ap = f"{report['test_average_precision']:.4f} | {report['baseline_average_precision']:.4f}"
    assert f"| **average precision** (promotion) | {ap} |" in lines
    cp = "test_card_precision_at_20"
    assert f"| card precision@20 | {report[cp]:.4f} | " in description
    review = out["fraud_model"].thresholds["review"]
    assert f"review \u2265 {review:.4f}" in description


def _check_plots(out: dict, report: dict) -> None:
    """The PR legend carries the test AP; the histogram, the model's thresholds."""
    legend = out["pr_curve_plot"].axes[0].get_legend().get_texts()
    assert legend[0].get_text() == f"lightgbm (AP {report['test_average_precision']:.3f})"
    lines = out["score_distribution_plot"].axes[0].get_lines()
    drawn = sorted(float(line.get_xdata()[0]) for line in lines)
    assert drawn == pytest.approx(sorted(out["fraud_model"].thresholds.values()))


def test_champion_moves_only_to_a_better_model(training_set, training_params, mlflow_store):
    """Promotion rule: a worse model is registered but the alias stays; a better one takes it."""
    mlflow = mlflow_store
    train, valid, test, split = n.split_transactions(training_set, pd.DataFrame(), training_params)
    report = {"metrics": {"baseline_average_precision": 0.0123, "baseline_roc_auc": 0.6}}
    good = _model(train, valid, split, training_params, shuffle_labels=False)
    bad = _model(train, valid, split, training_params, shuffle_labels=True)
    decisions = []
    for model in (bad, good, bad):
        with mlflow.start_run():
            decisions.append(n.register_model(model, test, report, training_params))
    first, second, third = decisions
    assert first["promoted"] and first["champion_value"] is None
    assert second["promoted"] and second["new_value"] > second["champion_value"]
    assert not third["promoted"] and third["champion_after"] == second["new_version"] == "2"
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias("fraud_model", "champion").version) == "2"
    assert len(client.search_model_versions("name = 'fraud_model'")) == 3
    # Each version's description says what it was compared with and what was decided.
    kept = client.get_model_version("fraud_model", "3").description.splitlines()
    assert kept[0].startswith("**Not promoted**: v2 stays champion. v3 does not beat")
    assert "| metric | v3 | baseline | champion v2 |" in kept
    assert (
        f"| **average precision** (promotion) | {third['new_value']:.4f} | 0.0123 | "
        f"{third['champion_value']:.4f} |"
    ) in kept
    promoted = client.get_model_version("fraud_model", "2").description.splitlines()
    assert promoted[0].startswith("**Promoted to champion.** v2 beats the champion")
    assert f"champion v1's {second['champion_value']:.4f}" in promoted[0]
    assert "| metric | v2 | baseline | champion v1 |" in promoted


def test_register_needs_an_active_run(training_set, training_params, mlflow_store):
    train, valid, test, split = n.split_transactions(training_set, pd.DataFrame(), training_params)
    model = _model(train, valid, split, training_params, shuffle_labels=False)
    with pytest.raises(RuntimeError, match="needs an active MLflow run"):
        n.register_model(model, test, {"metrics": {}}, training_params)


def _model(train, valid, split, params, *, shuffle_labels: bool) -> FraudModel:
    if shuffle_labels:
        rng = np.random.default_rng(0)
        train = train.assign(label=rng.permutation(train["label"].to_numpy()))
    config = {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 20}
    params = params | {"refit_threads": 1}
    return n.train_model(train, valid, {"config": config, "best_value": 0.0}, split, params)


def test_the_baseline_standardises_its_inputs(training_set, training_params):
    """The logistic-regression yardstick sees standardised inputs: its scores do not
    change when a feature's unit does (a raw-input baseline's would)."""
    from payments_ml.features.definitions import FEATURES  # noqa: PLC0415

    train, _, test, _ = n.split_transactions(training_set, pd.DataFrame(), training_params)
    rescaled = {
        name: frame.assign(merchant_fraud_rate_30d=frame["merchant_fraud_rate_30d"] * 1000.0)
        for name, frame in (("train", train), ("test", test))
    }
    assert "merchant_fraud_rate_30d" in FEATURES  # a rate, in per mille
    baseline = n.train_baseline(train, training_params)
    per_mille = n.train_baseline(rescaled["train"], training_params)
    np.testing.assert_allclose(
        per_mille.predict_proba(n._baseline_matrix(rescaled["test"]))[:, 1],
        baseline.predict_proba(n._baseline_matrix(test))[:, 1],
        rtol=1e-4,
        atol=1e-6,
    )
