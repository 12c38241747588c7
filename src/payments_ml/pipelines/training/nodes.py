"""Training nodes: time split, Ray Tune search, refit, baseline, evaluation, registration."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import numpy as np
import pandas as pd

from payments_ml.features import windows as fw
from payments_ml.features.definitions import FEATURE_DEFAULTS, FEATURES
from payments_ml.features.windows import iso_day
from payments_ml.labels.feed import relabel
from payments_ml.training import metrics as m
from payments_ml.training import plots
from payments_ml.training.model import FraudModel, load_fraud_model, log_fraud_model
from payments_ml.training.model_card import version_description
from payments_ml.training.trainer import TrainingData, fit_booster, tune_booster

logger = logging.getLogger(__name__)

_SPLIT_COLUMNS = [
    "transaction_id",
    "event_timestamp",
    "card_id",
    "is_fraud",
    "label_available_at",
    *FEATURES,
]


def time_split(first_day: int, last_day: int, params: dict[str, Any]) -> dict[str, list[int]]:
    """Day windows [first, last] (days since the epoch), anchored at the data's last day.

    ``test_days`` end at the last day (or ``test_end``); before them a gap of ``delay_days``
    whose labels would not be known yet when the model is trained; before the gap
    ``train_days``, of which the last ``valid_days`` validate (tuning, early stopping).
    """
    last = _day(params["test_end"]) if params.get("test_end") else last_day
    test = [last - params["test_days"] + 1, last]
    gap = [test[0] - params["delay_days"], test[0] - 1]
    train = [gap[0] - params["train_days"], gap[0] - 1]
    valid = [train[1] - params["valid_days"] + 1, train[1]]
    fit = [train[0], valid[0] - 1]
    if train[0] < first_day or fit[1] < fit[0] or last > last_day:
        raise ValueError(
            f"the split needs days {iso_day(train[0])} to {iso_day(last)} "
            f"(train_days={params['train_days']}, delay_days={params['delay_days']}, "
            f"test_days={params['test_days']}, valid_days={params['valid_days']}) but the "
            f"training set covers {iso_day(first_day)} to {iso_day(last_day)}; lower the day "
            "counts in parameters_training.yml or generate more days"
        )
    return {"fit": fit, "valid": valid, "gap": gap, "test": test}


def split_transactions(
    training_set: pd.DataFrame, transaction_labels: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Training, validation and test rows of the time split, with no future information.

    Labels: the feed's (``transaction_labels``) where it holds any (docs/design.md,
    "Labels"). Training and validation labels are those known when the model is trained
    (the test start): a fraud reported later counts as genuine. From each test day, cards already
    known to be defrauded (a fraud label available before that day) are dropped, as a
    fraud team would have blocked them.

    Returns:
        train, valid, test (model input, labels, ``event_day``) and the split's facts.
    """
    _check_columns(training_set)
    training_set = relabel(training_set, transaction_labels)
    days = fw.day_of(fw.to_ns(training_set["event_timestamp"]))
    first_day, last_day = int(days.min()), int(days.max())
    windows = time_split(first_day, last_day, params)
    in_window = (days >= windows["fit"][0]) & (days <= windows["test"][1])
    rows = training_set.loc[in_window, _SPLIT_COLUMNS].copy()
    rows["event_day"] = days[in_window]
    cutoff = pd.Timestamp(windows["test"][0] * fw.NS_DAY, tz="UTC")
    train_valid = rows[rows["event_day"] <= windows["valid"][1]].copy()
    hidden = train_valid["is_fraud"] & (train_valid["label_available_at"] >= cutoff)
    train_valid["label"] = train_valid["is_fraud"] & ~hidden
    test = rows[rows["event_day"] >= windows["test"][0]].copy()
    test["label"] = test["is_fraud"]
    lookback = params.get("known_fraud_lookback_days")
    blocked = _of_known_defrauded_cards(test, training_set, lookback)
    test = test[~blocked]
    train = train_valid[train_valid["event_day"] <= windows["fit"][1]]
    valid = train_valid[train_valid["event_day"] >= windows["valid"][0]]
    split = {
        **{f"{name}_window": [iso_day(a), iso_day(b)] for name, (a, b) in windows.items()},
        "data_window": [iso_day(first_day), iso_day(last_day)],
        "train_rows": len(train),
        "valid_rows": len(valid),
        "test_rows": len(test),
        "train_fraud_rate": round(float(train["label"].mean()), 5),
        "test_fraud_rate": round(float(test["label"].mean()), 5),
        "labels_not_yet_known": int(hidden.sum()),
        "test_rows_of_known_defrauded_cards": int(blocked.sum()),
        "test_share_of_known_defrauded_cards": round(float(blocked.mean()), 5)
        if len(blocked)
        else 0.0,
        "known_fraud_lookback_days": lookback,
    }
    _warn_if_test_set_shrinks(split, params.get("max_dropped_test_share"))
    _log_split(split, params["delay_days"])
    return (
        train.reset_index(drop=True),
        valid.reset_index(drop=True),
        test.reset_index(drop=True),
        split,
    )


def _check_columns(training_set: pd.DataFrame) -> None:
    missing = sorted(set(_SPLIT_COLUMNS) - set(training_set.columns))
    if missing:
        raise ValueError(
            f"training_set lacks columns {missing}; rebuild it with "
            "`kedro run --pipelines features`"
        )


def _of_known_defrauded_cards(
    test: pd.DataFrame, training_set: pd.DataFrame, lookback_days: float | None
) -> np.ndarray:
    """Test rows of cards a fraud team would have blocked: a fraud label of the card became
    available before the row's day started, within ``lookback_days`` (None: ever)."""
    known = training_set.loc[training_set["is_fraud"], ["card_id", "label_available_at"]]
    day_start = pd.to_datetime(test["event_day"] * fw.NS_DAY, utc=True)
    if lookback_days is None:
        first_known = known.groupby("card_id")["label_available_at"].min()
        blocked_since = test["card_id"].map(first_known)
        return (blocked_since.notna() & (blocked_since < day_start)).to_numpy()
    # The card's latest label before the day's start: blocked if within the look-back.
    rows = pd.DataFrame(
        {"card_id": test["card_id"].to_numpy(), "day_start": day_start.to_numpy()}
    ).reset_index(names="row")
    labels = known.rename(columns={"label_available_at": "known_at"})
    latest = pd.merge_asof(
        rows.sort_values("day_start", kind="stable"),
        labels.sort_values("known_at", kind="stable"),
        left_on="day_start",
        right_on="known_at",
        by="card_id",
        allow_exact_matches=False,
    ).sort_values("row")
    since = latest["day_start"] - latest["known_at"]
    return (since <= pd.Timedelta(days=lookback_days)).to_numpy()


def _warn_if_test_set_shrinks(split: dict[str, Any], max_share: float | None) -> None:
    share = split["test_share_of_known_defrauded_cards"]
    if max_share is not None and share > max_share:
        logger.warning(
            "%.0f %% of the test rows belong to cards already known defrauded and were dropped "
            "(more than training.max_dropped_test_share=%s): the test window measures little. "
            "Does the data keep using cards after their fraud? Lower "
            "training.known_fraud_lookback_days (now %s) to drop fewer.",
            100 * share,
            max_share,
            split["known_fraud_lookback_days"],
        )


def _log_split(split: dict[str, Any], delay_days: int) -> None:
    logger.info(
        "Split: fit %s..%s (%d rows), valid %s..%s (%d), gap %d days, test %s..%s (%d rows; "
        "%d rows of cards already known defrauded dropped); %d training frauds not yet "
        "reported count as genuine",
        *split["fit_window"],
        split["train_rows"],
        *split["valid_window"],
        split["valid_rows"],
        delay_days,
        *split["test_window"],
        split["test_rows"],
        split["test_rows_of_known_defrauded_cards"],
        split["labels_not_yet_known"],
    )


def tune_hyperparameters(
    train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any]
) -> dict[str, Any]:
    """Search LightGBM hyperparameters with Ray Tune; trials nest under the MLflow run."""
    import mlflow  # noqa: PLC0415

    run = mlflow.active_run()
    parent = None
    if run is not None:
        experiment = mlflow.get_experiment(run.info.experiment_id)
        parent = {
            "tracking_uri": mlflow.get_tracking_uri(),
            "experiment_name": experiment.name,
            "run_id": run.info.run_id,
        }
    return tune_booster(_training_data(train, valid), params, params["tune_storage_path"], parent)


def train_model(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    best_hyperparameters: dict[str, Any],
    split: dict[str, Any],
    params: dict[str, Any],
) -> FraudModel:
    """Refit the best configuration; decision thresholds from the validation window.

    The refit trains the number of rounds at which the best trial's early stopping
    settled, with no per-round validation (the metric costs a quarter of the time).
    """
    data = _training_data(train, valid)
    booster = fit_booster(
        best_hyperparameters["config"],
        data,
        params,
        threads=params["refit_threads"],
        rounds=best_hyperparameters.get("best_iteration"),
    )
    scores = booster.predict(data.x_valid)
    thresholds = {
        "review": m.threshold_for_precision(
            data.y_valid, scores, params["thresholds"]["review_precision"]
        ),
        "decline": m.threshold_for_precision(
            data.y_valid, scores, params["thresholds"]["decline_precision"]
        ),
    }
    thresholds["review"] = min(thresholds["review"], thresholds["decline"])
    logger.info(
        "Refit: %d rounds; thresholds review >= %.4f, decline >= %.4f",
        booster.current_iteration(),
        thresholds["review"],
        thresholds["decline"],
    )
    return FraudModel(
        booster=booster,
        features=list(FEATURES),
        defaults=dict(FEATURE_DEFAULTS),
        thresholds=thresholds,
        metadata={
            "rounds": booster.current_iteration(),
            "hyperparameters": best_hyperparameters["config"],
            "valid_metric": best_hyperparameters["best_value"],
            **split,
        },
    )


def train_baseline(train: pd.DataFrame, params: dict[str, Any]) -> Any:
    """The yardstick: logistic regression on the same features (standardised, balanced)."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    baseline = make_pipeline(
        StandardScaler(),
        LogisticRegression(
            C=params["baseline"]["C"],
            max_iter=params["baseline"]["max_iter"],
            class_weight="balanced",
        ),
    )
    baseline.fit(_baseline_matrix(train), train["label"].to_numpy(bool))
    return baseline


def evaluate_models(
    fraud_model: FraudModel,
    baseline_model: Any,
    test: pd.DataFrame,
    training_split: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Test-window metrics of the model and the baseline, on the same transactions, and
    how many test rows the known-defrauded-card rule dropped (``training_split``).

    Returns:
        Metrics for MLflow (``{name: {"value", "step"}}``) and the report written under
        data/08_reporting/.
    """
    labels = test["label"].to_numpy(bool)
    scores = _scores(fraud_model, baseline_model, test)
    k = params["card_precision_k"]
    values: dict[str, float] = {}
    for name, prefix in (("lightgbm", "test_"), ("baseline", "baseline_")):
        values[f"{prefix}average_precision"] = m.average_precision(labels, scores[name])
        values[f"{prefix}roc_auc"] = m.roc_auc(labels, scores[name])
        values[f"{prefix}card_precision_at_{k}"] = m.card_precision_at_k(test, scores[name], k)
    for decision in ("review", "decline"):
        at = m.precision_recall_at(labels, scores["lightgbm"], fraud_model.thresholds[decision])
        values[f"test_precision_at_{decision}"] = at["precision"]
        values[f"test_recall_at_{decision}"] = at["recall"]
        values[f"test_flagged_share_at_{decision}"] = at["flagged_share"]
    logger.info(
        "Test window: LightGBM AP %.4f, ROC AUC %.4f, CP@%d %.4f | baseline AP %.4f, "
        "ROC AUC %.4f, CP@%d %.4f",
        values["test_average_precision"],
        values["test_roc_auc"],
        k,
        values[f"test_card_precision_at_{k}"],
        values["baseline_average_precision"],
        values["baseline_roc_auc"],
        k,
        values[f"baseline_card_precision_at_{k}"],
    )
    report = {
        "metrics": {name: round(value, 6) for name, value in values.items()},
        # What a perfect ranking would reach: few cards are defrauded on a given day.
        f"card_precision_at_{k}_best_possible": m.card_precision_at_k(test, labels, k),
        "thresholds": fraud_model.thresholds,
        "test_rows": len(test),
        "test_frauds": int(labels.sum()),
        **_test_set_rule(training_split),
        "feature_importance_gain": _importance(fraud_model),
    }
    mlflow_metrics = {name: {"value": value, "step": 0} for name, value in values.items()}
    return mlflow_metrics, report


def _test_set_rule(split: dict[str, Any]) -> dict[str, Any]:
    """What the known-defrauded-card rule dropped from the test window."""
    return {
        "test_rows_dropped_known_defrauded": split["test_rows_of_known_defrauded_cards"],
        "test_share_dropped_known_defrauded": split.get("test_share_of_known_defrauded_cards"),
        "known_fraud_lookback_days": split.get("known_fraud_lookback_days"),
    }


def _importance(fraud_model: FraudModel) -> dict[str, float]:
    gains = fraud_model.booster.feature_importance(importance_type="gain")
    pairs = zip(fraud_model.features, gains.round(2).tolist(), strict=True)
    return dict(sorted(pairs, key=lambda item: -item[1]))


def plot_evaluation(
    fraud_model: FraudModel, baseline_model: Any, test: pd.DataFrame
) -> tuple[Any, Any, Any, Any]:
    """PR curves (model and baseline), feature importance, calibration, and the score
    histogram with the model's review and decline thresholds."""
    labels = test["label"].to_numpy(bool)
    scores = _scores(fraud_model, baseline_model, test)
    gains = fraud_model.booster.feature_importance(importance_type="gain")
    return (
        plots.pr_curves(labels, scores),
        plots.feature_importance(fraud_model.features, gains),
        plots.calibration(labels, scores["lightgbm"]),
        plots.score_distribution(labels, scores["lightgbm"], fraud_model.thresholds),
    )


def register_model(
    fraud_model: FraudModel,
    test: pd.DataFrame,
    evaluation_report: dict[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """Log and register the model; move the champion alias only if it beats the champion.

    The current champion is scored on this run's test window, so both are compared on
    the same transactions. The decision is logged as tags of the run; the version
    carries its test metrics (``evaluation_report``) as tags in the registry and a
    description: data windows, metrics beside the baseline and champion, the decision.
    """
    import mlflow  # noqa: PLC0415

    if mlflow.active_run() is None:
        raise RuntimeError(
            "register_model needs an active MLflow run; run it through `kedro run` "
            "(kedro-mlflow opens the run) or inside mlflow.start_run()"
        )
    registry, k = params["registry"], params["card_precision_k"]
    name, alias, metric = registry["model_name"], registry["alias"], registry["promotion_metric"]
    _check_promotion_metric(metric, k)
    new_metrics = _test_metrics(test, fraud_model.predict_proba(test), k)
    version = str(
        log_fraud_model(fraud_model, test, registered_model_name=name).registered_model_version
    )
    champion_version, champion_metrics = _champion_on(test, name, alias, k)
    champion_value = None if champion_metrics is None else champion_metrics[metric]
    decision = promotion_decision(
        name=name,
        version=version,
        metric=metric,
        new_value=new_metrics[metric],
        champion_version=champion_version,
        champion_value=champion_value,
        min_improvement=registry["min_improvement"],
    )
    client, commit = mlflow.MlflowClient(), _git_commit()
    _tag(client, fraud_model, decision, evaluation_report, commit)
    columns = {f"v{version}": new_metrics, **_baseline_column(evaluation_report)}
    if champion_metrics is not None:
        columns[f"champion v{champion_version}"] = champion_metrics
    _describe(client, fraud_model, decision, columns, k=k, commit=commit)
    if decision["promoted"]:  # last: a champion is always fully tagged and described
        client.set_registered_model_alias(name, alias, version)
    if champion_value is not None:
        mlflow.log_metric(f"champion_test_{metric}", champion_value)
    logger.info(
        "%s v%s: %s %s@%s is v%s",
        name,
        version,
        decision["reason"],
        name,
        alias,
        decision["champion_after"],
    )
    return decision


def promotion_decision(
    *,
    name: str,
    version: str,
    metric: str,
    new_value: float,
    champion_version: str | None,
    champion_value: float | None,
    min_improvement: float,
) -> dict[str, Any]:
    """The new version becomes champion when there is none, or when it beats the
    champion's ``metric`` on the same test rows by more than ``min_improvement``; the
    decision says why in ``reason``."""
    promote = champion_value is None or new_value > champion_value + min_improvement
    if champion_value is None:
        reason = f"No champion yet: v{version} (test {metric} {new_value:.4f}) becomes the first."
    else:
        margin = (
            f"test {metric} {new_value:.4f} against champion v{champion_version}'s "
            f"{champion_value:.4f} on the same test window ({new_value - champion_value:+.4f}"
        )
        reason = (
            f"v{version} beats the champion: {margin}, more than min_improvement "
            f"{min_improvement})."
            if promote
            else f"v{version} does not beat the champion by more than min_improvement "
            f"{min_improvement}: {margin})."
        )
    return {
        "model_name": name,
        "new_version": version,
        "metric": f"test_{metric}",
        "new_value": round(new_value, 6),
        "champion_version": champion_version,
        "champion_value": None if champion_value is None else round(champion_value, 6),
        "promoted": bool(promote),
        "champion_after": version if promote else champion_version,
        "reason": reason,
    }


def _describe(
    client: Any,
    fraud_model: FraudModel,
    decision: dict[str, Any],
    columns: dict[str, dict[str, float]],
    *,
    k: int,
    commit: str,
) -> None:
    """The version's registry description, Markdown shown on its page in the MLflow UI."""
    description = version_description(
        decision=decision,
        metadata=fraud_model.metadata,
        thresholds=fraud_model.thresholds,
        metrics=columns,
        k=k,
        commit=commit,
    )
    client.update_model_version(
        decision["model_name"], decision["new_version"], description=description
    )


def _baseline_column(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The baseline's test metrics from the evaluation report, as a column of the
    description's metric table (none when the report has no baseline)."""
    baseline = {
        key.removeprefix("baseline_"): value
        for key, value in report.get("metrics", {}).items()
        if key.startswith("baseline_")
    }
    return {"baseline": baseline} if baseline else {}


def _champion_on(
    test: pd.DataFrame, name: str, alias: str, k: int
) -> tuple[str | None, dict[str, float] | None]:
    """The current champion's version and its metrics on ``test`` (None, None: none yet)."""
    import mlflow  # noqa: PLC0415

    try:
        version = str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None, None  # the decision says so
    champion = load_fraud_model(f"models:/{name}@{alias}")
    return version, _test_metrics(test, champion.predict_proba(test), k)


def _tag(
    client: Any,
    fraud_model: FraudModel,
    decision: dict[str, Any],
    report: dict[str, Any],
    commit: str,
) -> None:
    """The version's test metrics as registry tags; the run's commit, windows and decision."""
    import mlflow  # noqa: PLC0415

    name, version = decision["model_name"], decision["new_version"]
    data_window = "..".join(fraud_model.metadata["data_window"])
    tags = {
        **report["metrics"],
        decision["metric"]: decision["new_value"],
        "data_window": data_window,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    mlflow.set_tags(
        {
            "git_commit": commit,
            "data_window": data_window,
            "test_window": "..".join(fraud_model.metadata["test_window"]),
            "promotion": "promoted" if decision["promoted"] else "kept champion",
            "model_version": version,
        }
    )


def _promotion_metrics(k: int) -> tuple[str, str, str]:
    """The metrics a promotion can compare (`_test_metrics`' keys, in its order)."""
    return "average_precision", "roc_auc", f"card_precision_at_{k}"


def _test_metrics(test: pd.DataFrame, scores: np.ndarray, k: int) -> dict[str, float]:
    """The metrics a promotion can compare, of one model's ``scores`` on ``test``."""
    labels = test["label"].to_numpy(bool)
    values = (
        m.average_precision(labels, scores),
        m.roc_auc(labels, scores),
        m.card_precision_at_k(test, scores, k),
    )
    return dict(zip(_promotion_metrics(k), values, strict=True))


def _check_promotion_metric(name: str, k: int) -> None:
    known = _promotion_metrics(k)
    if name not in known:
        raise ValueError(
            f"training.registry.promotion_metric {name!r} is not one of {', '.join(known)}"
        )


def _scores(fraud_model: FraudModel, baseline_model: Any, test: pd.DataFrame) -> dict:
    return {
        "lightgbm": fraud_model.predict_proba(test),
        "baseline": baseline_model.predict_proba(_baseline_matrix(test))[:, 1],
    }


def _training_data(train: pd.DataFrame, valid: pd.DataFrame) -> TrainingData:
    return TrainingData(
        features=list(FEATURES),
        x_train=train[FEATURES].to_numpy(np.float64),
        y_train=train["label"].to_numpy(np.float64),
        x_valid=valid[FEATURES].to_numpy(np.float64),
        y_valid=valid["label"].to_numpy(np.float64),
    )


def _baseline_matrix(rows: pd.DataFrame) -> np.ndarray:
    """Logistic regression needs numbers everywhere: missing values take cold-start values,
    or 0 where the feature is undefined (no history), with log1p on the skewed columns."""
    matrix = (
        rows[FEATURES]
        .astype(float)
        .fillna({f: 0.0 if v is None else v for f, v in FEATURE_DEFAULTS.items()})
    )
    skewed = [f for f in FEATURES if "amount" in f or "count" in f or f.startswith("seconds")]
    matrix[skewed] = np.log1p(matrix[skewed].clip(lower=0))
    return matrix.to_numpy(np.float64)


def _day(iso: str) -> int:
    return int(pd.Timestamp(iso, tz="UTC").value // fw.NS_DAY)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
