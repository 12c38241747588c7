"""Monitoring nodes: measure data quality and drift, then judge them against the rules."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import ray

from payments_ml.datasets.file_tasks import map_files, tasks_for_cluster
from payments_ml.features import windows as fw
from payments_ml.features.definitions import FEATURES
from payments_ml.monitoring import alerts as al
from payments_ml.monitoring import drift as dr
from payments_ml.monitoring import quality as qu

logger = logging.getLogger(__name__)

_SCORED_COLUMNS = [
    "scored_at", "event_timestamp", "fraud_probability", "decision", "model_version", *FEATURES
]  # fmt: skip
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


def measure_data_quality(
    raw_transactions: ray.data.Dataset,
    transactions_quarantine: ray.data.Dataset,
    monitoring_state: dict[str, Any],
    transaction_labels: pd.DataFrame,
    params: dict[str, Any],
    *,
    raw_files: pads.Dataset | None = None,
    quarantine_files: pads.Dataset | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per day of what arrived (valid + quarantined), and the updated memory.

    The rows are reduced to per-day partial counts where they are read; only those
    small partials reach this process. With the folders' file views (``raw_files``,
    ``quarantine_files``, as the pipeline passes them), one task per run of files reads
    them with pyarrow (``datasets.file_tasks.map_files``: no Ray Data executor, 4x
    faster at 1 M rows on 2 cores) and the two Ray Datasets only order this node after
    their writers; without them, each Ray Data block is reduced.

    Returns:
        The day table (data_quality.parquet) and the state of seen row counts.
    """
    as_of = run_moment(params)
    quality = params["quality"]
    edges = qu.amount_edges(quality["amount_histogram"])
    labels = _label_table(transaction_labels)
    partials = [
        *_partials(raw_files or raw_transactions, False, edges, as_of, labels),
        *_partials(quarantine_files or transactions_quarantine, True, edges, as_of),
    ]
    days = qu.combine_partials(partials, len(edges) + 1)
    if days.empty:
        raise ValueError(
            "raw_transactions and transactions_quarantine hold no rows: nothing to monitor; "
            "run `kedro run --pipelines data_gen` (or ingest) first"
        )
    daily = qu.daily_quality(days, edges, as_of, quality)
    daily, state = qu.apply_late_rows(daily, monitoring_state, as_of)
    logger.info(
        "Data quality: %d day(s) from %s to %s, %d rows arrived (%d quarantined, %d "
        "duplicate ids, %d late)",
        len(daily),
        daily["event_date"].iloc[0],
        daily["event_date"].iloc[-1],
        daily["rows_arrived"].sum(),
        daily["rows_quarantined"].sum(),
        daily["duplicate_rows"].sum(),
        daily["late_rows"].sum(),
    )
    return daily, state


def measure_drift(
    training_set: pd.DataFrame,
    scored_transactions: pads.Dataset | None,
    training_split: dict[str, Any],
    params: dict[str, Any],
    model_name: str,
    *,
    serving_deployment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Feature drift of the training set's recent days, score and served-feature drift.

    The reference window is the one the model was trained on (fit and validation days
    of ``training_split``, as the training pipeline wrote it); the recent window is the
    training set's last ``drift.recent_days``. ``serving_deployment`` (empty before a
    first deployment) is the scorer the serving stage left running: taking it as an
    input makes a whole `kedro run` monitor after serving, and the report names the
    version it deployed.
    """
    drift = params["drift"]
    if not training_split:
        return _no_model_yet()
    days = fw.day_of(fw.to_ns(training_set["event_timestamp"]))
    train = [training_split["fit_window"][0], training_split["valid_window"][1]]
    recent = _iso([int(days.max()) - drift["recent_days"] + 1, int(days.max())])
    reference_rows = _between(training_set, days, train)
    features = dr.feature_drift(
        reference_rows,
        _between(training_set, days, recent),
        FEATURES,
        drift["psi_bins"],
        drift["min_rows"],
    )
    features = {"reference_window": train, "recent_window": recent, **features}
    if features["status"] == "ok":
        top = next(iter(features["psi"].items()))
        logger.info("Feature drift: largest PSI %.4f (%s)", top[1], top[0])
    served = dr.recent_scored(scored_transactions, drift["recent_days"], _SCORED_COLUMNS)
    score, served_features = _score_drift(
        served,
        training_set,
        reference_rows,
        days=days,
        test_window=list(training_split["test_window"]),
        drift=drift,
        model_name=model_name,
    )
    served_features["reference_window"] = train
    return {
        "deployed_model_version": (serving_deployment or {}).get("model_version"),
        "feature_drift": features,
        "score_drift": score,
        "served_feature_drift": served_features,
    }


def raise_alerts(
    data_quality: pd.DataFrame, drift: dict[str, Any], params: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Judge the day table and the drift report against ``monitoring.rules``.

    Every alert is logged and returned as a line of the alert log, stamped with this
    run's id and time; a last ``info`` line ``monitoring_run`` summarises the run.

    Returns:
        Alert lines to append, the drift report (drift.json) and MLflow metrics.
    """
    now = dt.datetime.now(dt.UTC)
    as_of = al.iso_utc(run_moment(params))
    run_id = al.new_run_id(now)
    rules = al.load_rules(params["rules"])
    _check_rule_metrics(rules, data_quality)
    found = qu.quality_alerts(data_quality, rules, params["quality"])
    found += dr.drift_alerts(drift, rules)
    found += _skipped(drift)
    counts = {s: sum(a.severity == s for a in found) for s in al.SEVERITIES}
    found.append(
        al.Alert(
            severity="info",
            metric=al.RUN_METRIC,
            value=float(counts["warning"] + counts["critical"]),
            threshold=None,
            rule=al.RUN_METRIC,
            message=(
                f"monitoring run {run_id}: {counts['critical']} critical, "
                f"{counts['warning']} warning alert(s) over {len(data_quality)} day(s)"
            ),
            context={"as_of": as_of, **counts},
        )
    )
    for alert in found:
        logger.log(_LOG_LEVELS[alert.severity], "Alert (%s): %s", alert.severity, alert.message)
    lines = [alert.record(run_id, now) for alert in found]
    report = {
        "run_id": run_id,
        "generated_at": al.iso_utc(now),
        "as_of": as_of,
        **drift,
        "alerts": counts,
    }
    return lines, report, _mlflow_metrics(drift, counts)


def run_moment(params: dict[str, Any]) -> dt.datetime:
    """``monitoring.as_of`` as an aware UTC datetime; when it is null, the midnight after
    ``monitoring.run_date`` (the daily run's day), or else the clock."""
    value = params.get("as_of")
    if value in (None, "") and params.get("run_date"):
        return pd.Timestamp(str(params["run_date"]), tz="UTC").to_pydatetime() + dt.timedelta(
            days=1
        )
    if value in (None, ""):
        return dt.datetime.now(dt.UTC)
    try:
        moment = pd.Timestamp(value)
    except ValueError as err:
        raise ValueError(
            f"monitoring.as_of must be an ISO moment such as 2025-06-30T06:00:00Z or null, "
            f"got {value!r}"
        ) from err
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return moment.to_pydatetime()


def _no_model_yet() -> dict[str, Any]:
    """Drift before the first training: nothing to compare with (the alerts say so)."""
    reason = "no model trained yet (run the training pipeline)"
    logger.info("Drift not checked: %s", reason)
    return {section: {"status": "skipped", "reason": reason} for section in dr.DRIFT_SECTIONS}


def _label_table(labels: pd.DataFrame) -> pa.Table | None:
    """The feed's labels for the day partials (small: frauds and verdicts), or None."""
    if not len(labels):
        return None
    columns = ["transaction_id", "is_fraud", "label_available_at"]
    return pa.Table.from_pandas(labels[columns], preserve_index=False)


def _partials(
    data: ray.data.Dataset | pads.Dataset | None,
    quarantined: bool,
    edges: np.ndarray,
    as_of: dt.datetime,
    labels: pa.Table | None = None,
) -> list[pa.Table]:
    """Per-day partials of a Ray Dataset (per block) or of Parquet files (per run of
    files, read in tasks); none for a folder without data files (None)."""
    if data is None:
        return []
    names = data.schema.names if isinstance(data, pads.Dataset) else data.schema().names
    qu.require_contract_columns(names, quarantined)
    wanted = [*qu.CONTRACT_COLUMNS, *(["event_date"] if "event_date" in names else [])]
    kwargs = {
        "quarantined": quarantined,
        "edges": edges,
        "as_of_ns": int(pd.Timestamp(as_of).value),
        "labels": labels,
    }
    if isinstance(data, pads.Dataset):
        tasks = tasks_for_cluster()
        return ray.get(map_files(data, wanted, qu.day_partials, tasks, **kwargs))
    reduced = data.select_columns(wanted).map_batches(
        qu.day_partials, batch_format="pyarrow", batch_size=None, fn_kwargs=kwargs
    )
    return ray.get(reduced.to_arrow_refs())


def _score_drift(
    served: pd.DataFrame,
    training_set: pd.DataFrame,
    reference_rows: pd.DataFrame,
    *,
    days: np.ndarray,
    test_window: list[str],
    drift: dict[str, Any],
    model_name: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Score drift of the latest model version in the log, and its served features.

    The reference scores are that version's on its own test window (its metadata; the
    current split's test window for a model without one). Both references keep only the
    rows of the served rows' part of the calendar (monitoring.drift.served_calendar).
    """
    if served.empty:
        reason = "no scored transactions logged yet"
        logger.info("Score drift skipped: %s", reason)
        return {"status": "skipped", "reason": reason}, {"status": "skipped", "reason": reason}
    version = str(served.loc[served["scored_at"].idxmax(), "model_version"])
    served = served[served["model_version"].astype(str) == version]
    window = [  # to the second: an ISO moment in the report
        al.iso_utc(served["scored_at"].min().floor("s").to_pydatetime()),
        al.iso_utc(served["scored_at"].max().floor("s").to_pydatetime()),
    ]
    calendar = dr.served_calendar(served["event_timestamp"])
    described = dr.describe_calendar(calendar)
    served_features = dr.feature_drift(
        dr.in_calendar(reference_rows, calendar), served, FEATURES, drift["psi_bins"],
        drift["min_rows"],
    )  # fmt: skip
    served_features.update(served_window=window, calendar=described)
    model = _load_model(model_name, version)
    if model is None:
        reason = f"model version {version!r} of the scored rows could not be loaded"
        return {"status": "skipped", "reason": reason, "model_version": version}, served_features
    test = list(model.metadata.get("test_window") or test_window)
    scores = model.predict_proba(dr.in_calendar(_between(training_set, days, test), calendar))
    score = dr.score_drift(
        scores,
        served["fraud_probability"].to_numpy(np.float64),
        n_bins=drift["psi_bins"],
        min_rows=drift["min_rows"],
        reference_decisions=model.decide(scores),
        served_decisions=served["decision"].to_numpy(str),
    )
    score.update(
        model_version=version,
        reference_window=test,
        served_window=window,
        calendar=described,
    )
    logger.info(
        "Score drift of model v%s: %s",
        version,
        f"PSI {score['psi']:.4f}" if score["status"] == "ok" else score["reason"],
    )
    return score, served_features


def _between(rows: pd.DataFrame, days: np.ndarray, window: list[str]) -> pd.DataFrame:
    """Rows whose event day (``days``, computed once per node) is within ``window``
    (ISO dates, both included)."""
    first, last = (pd.Timestamp(day, tz="UTC").value // fw.NS_DAY for day in window)
    return rows[(days >= first) & (days <= last)]


def _load_model(name: str, version: str) -> Any:
    import mlflow  # noqa: PLC0415

    from payments_ml.training.model import load_fraud_model  # noqa: PLC0415

    uri = f"models:/{name}/{version}"
    try:
        return load_fraud_model(uri)
    except (mlflow.exceptions.MlflowException, OSError) as err:
        logger.warning(
            "Score drift skipped: cannot load %s from the registry at %s (%s)",
            uri,
            mlflow.get_registry_uri(),
            err,
        )
        return None


def _skipped(drift: dict[str, Any]) -> list[al.Alert]:
    """Info lines for the checks that could not run, so the dashboard says why."""
    return [
        al.Alert(
            severity="info",
            metric=metric,
            value=None,
            threshold=None,
            rule=metric,
            message=f"{section.replace('_', ' ')} not checked: {drift[section]['reason']}",
        )
        for section, metric in dr.DRIFT_SECTIONS.items()
        if drift.get(section, {}).get("status") == "skipped"
    ]


def _check_rule_metrics(rules: dict[str, al.Rule], data_quality: pd.DataFrame) -> None:
    known = {*data_quality.columns, "null_rate", *dr.DRIFT_METRICS} - {"event_date", "weekday"}
    unknown = {name: rule.metric for name, rule in rules.items() if rule.metric not in known}
    if unknown:
        raise ValueError(
            f"monitoring.rules judge metrics that monitoring does not measure: {unknown}; "
            f"use one of {sorted(known)}"
        )


def _mlflow_metrics(drift: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    values: dict[str, float] = {
        "alerts_critical": counts["critical"],
        "alerts_warning": counts["warning"],
    }
    for section, name in dr.PER_FEATURE_SECTIONS.items():
        psi = drift.get(section, {}).get("psi", {})
        values.update({f"{name}.{feature}": value for feature, value in psi.items()})
        if psi:
            values[f"{name}_max"] = max(psi.values())
    if drift.get("score_drift", {}).get("status") == "ok":
        values["score_psi"] = drift["score_drift"]["psi"]
    return {name: {"value": float(value), "step": 0} for name, value in values.items()}


def _iso(window: list[int]) -> list[str]:
    return [dr.iso_day(day) for day in window]


def report_review_outcome(
    scored_transactions: Any, label_reports: Any, days: int, serving_deployment: Any
) -> list:
    """The review loop's outcome per day (`payments_ml.monitoring.review`);
    ``serving_deployment`` orders it after serving in `kedro run`, as the drift check."""
    from payments_ml.monitoring.review import review_outcome_by_day  # noqa: PLC0415

    return review_outcome_by_day(scored_transactions, label_reports, days)
