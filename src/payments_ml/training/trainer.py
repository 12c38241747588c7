"""LightGBM training and its hyperparameter search with Ray Tune: one training function."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from payments_ml.config import absolute_path

logger = logging.getLogger(__name__)

# LightGBM's name of the validation metric -> the name reported to Tune and MLflow.
METRICS = {"average_precision": "valid_average_precision", "auc": "valid_roc_auc"}


@dataclass
class TrainingData:
    """The model input of the training and validation windows (numpy, float64)."""

    features: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray


def booster_params(config: dict[str, Any], params: dict[str, Any], threads: int) -> dict:
    """LightGBM parameters: the fixed ones from parameters_training.yml, then ``config``."""
    return {
        **params["lightgbm"],
        "metric": params["metric"],
        "num_threads": threads,
        "seed": params["seed"],
        "verbosity": -1,
        **config,
    }


def fit_booster(
    config: dict[str, Any],
    data: TrainingData,
    params: dict[str, Any],
    *,
    threads: int = 1,
    report: Callable[[dict[str, float]], None] | None = None,
    rounds: int | None = None,
) -> lgb.Booster:
    """Train on the training window, early-stopped on the validation window.

    Args:
        config: Hyperparameters of this fit (a Tune trial's sample or the best one).
        data: The training and validation matrices.
        params: The ``training`` parameters (fixed LightGBM settings, metric, rounds).
        threads: LightGBM threads.
        report: Called every ``report_every`` rounds with the validation metric (Tune).
        rounds: Train exactly this many rounds, without validation (a refit at the
            iteration where the search's early stopping settled).

    Returns:
        The booster, cut at its best iteration.
    """
    train = lgb.Dataset(data.x_train, data.y_train, feature_name=data.features)
    if rounds is not None:
        return lgb.train(booster_params(config, params, threads), train, num_boost_round=rounds)
    valid = lgb.Dataset(data.x_valid, data.y_valid, reference=train)
    callbacks = [lgb.early_stopping(params["early_stopping_rounds"], verbose=False)]
    if report is not None:
        callbacks.append(_reporter(report, params["metric"], params["report_every"]))
    booster = lgb.train(
        booster_params(config, params, threads),
        train,
        num_boost_round=params["num_boost_round"],
        valid_sets=[valid],
        valid_names=["valid"],
        callbacks=callbacks,
    )
    booster.free_dataset()
    return booster


def tune_booster(
    data: TrainingData,
    params: dict[str, Any],
    storage_path: str | Path,
    mlflow_parent: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Search LightGBM hyperparameters with Ray Tune on the running Ray cluster.

    Optuna proposes configurations, ASHA stops the weak ones early, ``num_samples``
    trials run with as many at once as the cluster has CPUs for. With ``mlflow_parent``
    (``tracking_uri``, ``experiment_name``, ``run_id``) every trial is a nested MLflow run.

    Returns:
        The best configuration, its validation metric and best iteration, and the trials.
    """
    import ray  # noqa: PLC0415
    from optuna import logging as optuna_logging  # noqa: PLC0415
    from ray import tune  # noqa: PLC0415

    from payments_ml.training.progress import TrialProgress  # noqa: PLC0415

    metric = METRICS[params["metric"]]
    cpus = int(ray.cluster_resources().get("CPU", 1))
    concurrency = max(1, cpus // params["cpus_per_trial"])
    max_reports = max(1, params["num_boost_round"] // params["report_every"])
    trainable = tune.with_resources(
        tune.with_parameters(_trial, data=data, params=params), {"cpu": params["cpus_per_trial"]}
    )
    logger.info(
        "Tuning LightGBM: %d trials, %d at a time (%d CPUs, %d per trial), metric %s",
        params["num_samples"],
        concurrency,
        cpus,
        params["cpus_per_trial"],
        metric,
    )
    # Tune's console tables go to the run's log file (verbose=0 and the classic reporter:
    # the newer one prints an experiment table whatever the verbosity); TrialProgress
    # logs one line per trial. Optuna's own INFO lines likewise.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    optuna_logging.set_verbosity(optuna_logging.WARNING)
    start = time.perf_counter()
    results = tune.Tuner(
        trainable,
        param_space=search_space(params["search_space"]),
        tune_config=_tune_config(params, metric, concurrency, max_reports),
        run_config=tune.RunConfig(
            name=f"fraud_model_{time.strftime('%Y%m%d_%H%M%S')}",
            storage_path=absolute_path(storage_path),
            callbacks=[
                TrialProgress(params["num_samples"], metric),
                *_mlflow_callbacks(mlflow_parent),
            ],
            verbose=0,  # Tune's tables to the log file; one line per trial on the console
        ),
    ).fit()
    return _search_result(results, metric, max_reports, time.perf_counter() - start)


def _tune_config(params: dict[str, Any], metric: str, concurrency: int, max_reports: int) -> Any:
    """Optuna proposes, ASHA stops weak trials early (in reports of ``report_every`` rounds)."""
    from ray import tune  # noqa: PLC0415
    from ray.tune.schedulers import ASHAScheduler  # noqa: PLC0415
    from ray.tune.search.optuna import OptunaSearch  # noqa: PLC0415

    return tune.TuneConfig(
        metric=metric,
        mode="max",
        search_alg=OptunaSearch(metric=metric, mode="max", seed=params["seed"]),
        scheduler=ASHAScheduler(
            time_attr="training_iteration",
            max_t=max_reports,
            grace_period=params["asha"]["grace_period"],
            reduction_factor=params["asha"]["reduction_factor"],
        ),
        num_samples=params["num_samples"],
        max_concurrent_trials=concurrency,
    )


def _search_result(results: Any, metric: str, max_reports: int, seconds: float) -> dict[str, Any]:
    """The best configuration and the trials of a finished search (Tune's ResultGrid)."""
    errors = [r.error for r in results if r.error]
    if len(errors) == len(results):
        raise RuntimeError(f"every Tune trial failed; the first error: {errors[0]}")
    best = results.get_best_result(metric=metric, mode="max", scope="all")
    frame = results.get_dataframe(filter_metric=metric, filter_mode="max")
    logger.info(
        "Tuning done in %.1f s: best %s %.4f after %d trials (%d stopped early by ASHA)",
        seconds,
        metric,
        best.metrics[metric],
        len(results),
        int((frame["training_iteration"] < max_reports).sum()),
    )
    return {
        "config": best.config,
        "metric": metric,
        "best_value": float(best.metrics[metric]),
        "best_iteration": int(best.metrics["best_iteration"]),
        "trials": len(results),
        "failed_trials": len(errors),
        "seconds": round(seconds, 2),
        "trials_per_minute": round(60 * len(results) / seconds, 2),
        "trial_results": [
            {
                "config": r.config,
                metric: r.metrics.get(metric),
                "reports": r.metrics.get("training_iteration"),
            }
            for r in results
            if not r.error
        ],
    }


def search_space(space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Tune distributions from parameters: ``{name: {type: loguniform, low, high}}``."""
    from ray import tune  # noqa: PLC0415

    kinds = {
        "uniform": lambda s: tune.uniform(s["low"], s["high"]),
        "loguniform": lambda s: tune.loguniform(s["low"], s["high"]),
        "randint": lambda s: tune.randint(s["low"], s["high"] + 1),
        "choice": lambda s: tune.choice(s["values"]),
    }
    distributions = {}
    for name, spec in space.items():
        if spec.get("type") not in kinds:
            raise ValueError(
                f"training.search_space.{name}: type {spec.get('type')!r} is not one of "
                f"{sorted(kinds)}"
            )
        distributions[name] = kinds[spec["type"]](spec)
    return distributions


def _trial(config: dict[str, Any], data: TrainingData, params: dict[str, Any]) -> None:
    from ray import tune  # noqa: PLC0415

    booster = fit_booster(
        config, data, params, threads=params["cpus_per_trial"], report=tune.report
    )
    # The last report is the early-stopped best, which is what a refit would reach.
    tune.report(
        {
            METRICS[params["metric"]]: booster.best_score["valid"][params["metric"]],
            "best_iteration": booster.best_iteration,
        }
    )


def _reporter(
    report: Callable[[dict[str, float]], None], metric: str, every: int
) -> Callable[[Any], None]:
    def callback(env: Any) -> None:
        if (env.iteration + 1) % every == 0:
            value = next(r[2] for r in env.evaluation_result_list if r[1] == metric)
            report({METRICS[metric]: value, "best_iteration": env.iteration + 1})

    return callback


def _mlflow_callbacks(parent: dict[str, str] | None) -> list[Any]:
    if not parent:
        return []
    from ray.air.integrations.mlflow import MLflowLoggerCallback  # noqa: PLC0415

    return [
        MLflowLoggerCallback(
            tracking_uri=parent["tracking_uri"],
            experiment_name=parent["experiment_name"],
            tags={"mlflow.parentRunId": parent["run_id"], "kind": "tune_trial"},
            save_artifact=False,
        )
    ]
