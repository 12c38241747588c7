"""The monitoring pipeline on small histories: bad days in, the right alerts out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import ParquetDataset

from payments_ml.monitoring import alerts as al
from payments_ml.monitoring.datasets import AlertLogDataset, JSONStateDataset, ParquetLogDataset
from payments_ml.pipelines.monitoring import create_pipeline, nodes
from tests.monitoring import synthetic as syn
from tests.pipelines.monitoring.conftest import small

pytestmark = pytest.mark.usefixtures("ray_session")

SHIFTED = "customer_amount_avg_30d"


def run_monitoring(
    ray_session,
    folder: Path,
    *,
    valid: pd.DataFrame,
    quarantine: pd.DataFrame,
    training_set: pd.DataFrame,
    params: dict[str, Any],
    training_split: dict[str, Any],
) -> dict[str, Any]:
    """One run with the real state, alert-log and scored-log datasets under ``folder``."""
    state = JSONStateDataset(filepath=str(folder / "monitoring_state.json"))
    catalog = DataCatalog(
        {
            "raw_transactions": MemoryDataset(
                ray_session.data.from_pandas(valid, override_num_blocks=4), copy_mode="assign"
            ),
            "transactions_quarantine": MemoryDataset(
                ray_session.data.from_pandas(quarantine.drop(columns=syn.REASON)),
                copy_mode="assign",
            ),
            # No file views: the node reduces the Ray Datasets' blocks (the CLI tests read
            # the folders' files in tasks, as `kedro run` does).
            "raw_transaction_files": MemoryDataset(None),
            "quarantine_transaction_files": MemoryDataset(None),
            "monitoring_state": state,
            "transaction_labels": MemoryDataset(pd.DataFrame()),  # no labels feed
            "monitoring_state_updated": state,
            "training_set@pandas": MemoryDataset(training_set),
            "scored_transactions": ParquetLogDataset(filepath=str(folder / "scored")),
            "params:monitoring": MemoryDataset(params),
            "training_split": MemoryDataset(training_split),
            "serving_deployment": MemoryDataset({}),  # none yet
            "params:training.registry.model_name": MemoryDataset("fraud_model"),
            "data_quality": ParquetDataset(filepath=str(folder / "data_quality.parquet")),
            "drift_report": JSONDataset(filepath=str(folder / "drift.json")),
            "monitoring_metrics": MemoryDataset(),
            "alerts": AlertLogDataset(filepath=str(folder / "alerts.jsonl")),
            "label_reports": ParquetLogDataset(filepath=str(folder / "labels")),
            "params:monitoring.review_days": MemoryDataset(7),
            "review_outcome": JSONDataset(filepath=str(folder / "review_outcome.json")),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    outputs = {name: catalog.load(name) for name in ("data_quality", "drift_report")}
    outputs["monitoring_metrics"] = catalog.load("monitoring_metrics")
    outputs["review_outcome"] = catalog.load("review_outcome")
    outputs["alerts"] = al.read_alerts(folder / "alerts.jsonl", latest_run=True)
    return outputs


def bad_history() -> tuple[pd.DataFrame, pd.DataFrame]:
    """28 clean days, then one defect a day over the last 7 (the alert window)."""
    valid, quarantine = syn.transactions(n_days=28), syn.empty_quarantine()
    valid, quarantine = syn.null_merchants(valid, quarantine, 21, 0.3)
    valid, quarantine = syn.duplicate_burst(valid, quarantine, 22, 20)
    # Two ids of day 3 come again on day 23 in another batch: valid by the contract.
    again = valid[valid["event_date"] == syn.day(3)].head(2)
    again = again.assign(
        event_date=syn.day(23), event_timestamp=again["event_timestamp"] + pd.Timedelta(days=20)
    )
    valid = pd.concat([valid, again], ignore_index=True)
    valid = syn.thin_day(valid, 24, 0.5)
    valid = syn.fraud_spike(valid, 25, 8)
    valid = syn.thin_day(valid, 26, 0.7)
    valid = syn.scale_amounts(valid, 27, 5.0)
    return valid, quarantine


def drifted_training_set() -> pd.DataFrame:
    rows = syn.feature_rows(n_days=28, per_day=300)
    recent = rows["event_timestamp"] >= pd.Timestamp(syn.day(21), tz="UTC")
    rows.loc[recent, SHIFTED] += 3.0  # 1.5 standard deviations
    return rows


def judged(lines: list[dict[str, Any]]) -> list[tuple]:
    return sorted(
        (line["rule"], line["severity"], line.get("day"), line.get("column") or line.get("feature"))
        for line in lines
        if line["severity"] != "info"
    )


BAD_DAY_ALERTS = [
    ("amount_shift", "critical", syn.day(27), None),  # amounts x5
    ("duplicate_rate", "critical", syn.day(22), None),  # 20 of 420 rows
    ("duplicate_rate", "warning", syn.day(23), None),  # 2 of 402: ids seen 20 days earlier
    ("feature_drift", "critical", None, SHIFTED),
    ("fraud_rate_spike", "critical", syn.day(25), None),  # 6.25x the usual rate
    ("null_rate", "critical", syn.day(21), "merchant_id"),  # 30 %
    ("quarantine_rate", "critical", syn.day(21), None),
    ("quarantine_rate", "critical", syn.day(22), None),
    ("volume_drop", "critical", syn.day(24), None),  # half the usual volume
    ("volume_drop", "warning", syn.day(26), None),  # 70 %
]


@pytest.fixture(scope="module")
def runs(ray_session, tmp_path_factory, shipped_monitoring_params, training_split):
    """A clean history; then bad days; then the bad days again with late rows on day 5."""
    params = {"params": small(shipped_monitoring_params), "training_split": training_split}
    clean = run_monitoring(
        ray_session,
        tmp_path_factory.mktemp("clean"),
        valid=syn.transactions(n_days=28),
        quarantine=syn.empty_quarantine(),
        training_set=syn.feature_rows(n_days=28, per_day=300),
        **params,
    )
    valid, quarantine = bad_history()
    bad_folder = tmp_path_factory.mktemp("bad")
    bad_days = {"quarantine": quarantine, "training_set": drifted_training_set(), **params}
    bad = run_monitoring(ray_session, bad_folder, valid=valid, **bad_days)
    late = run_monitoring(ray_session, bad_folder, valid=syn.late_rows(valid, 5, 10), **bad_days)
    return {"clean": clean, "bad": bad, "late": late, "bad_folder": bad_folder}


def test_a_clean_history_raises_no_alert(runs):
    clean = runs["clean"]
    assert judged(clean["alerts"]) == []
    info = {line["metric"]: line for line in clean["alerts"]}
    assert set(info) == {"score_psi", "served_feature_psi", al.RUN_METRIC}
    assert info["score_psi"]["message"] == (
        "score drift not checked: no scored transactions logged yet"
    )
    assert clean["drift_report"]["score_drift"] == {
        "status": "skipped",
        "reason": "no scored transactions logged yet",
    }
    assert len(clean["data_quality"]) == 28


def test_each_bad_day_raises_its_alert_with_its_severity(runs):
    assert judged(runs["bad"]["alerts"]) == BAD_DAY_ALERTS


def test_late_rows_alert_once_and_the_rest_stays_active(runs):
    late = runs["late"]
    assert judged(late["alerts"]) == sorted(
        [*BAD_DAY_ALERTS, ("late_rate", "critical", syn.day(5), None)]  # 10 of 410 rows
    )
    day5 = late["data_quality"].set_index("event_date").loc[syn.day(5)]
    assert (day5["late_rows"], day5["late_rows_new"], day5["rows_arrived"]) == (10, 10, 410)
    log = runs["bad_folder"] / "alerts.jsonl"
    assert len({line["run_id"] for line in al.read_alerts(log)}) == 2
    active = al.active_alerts(log)
    assert {line["run_id"] for line in active} == {late["alerts"][0]["run_id"]}
    assert judged(active) == judged(late["alerts"])


def test_the_run_closes_with_a_summary_and_metrics(runs):
    bad = runs["bad"]
    last = bad["alerts"][-1]
    assert last["metric"] == al.RUN_METRIC and last["severity"] == "info"
    assert last["context"]["critical"] == 8 and last["context"]["warning"] == 2
    assert last["context"]["as_of"] == "2025-07-15T00:00:00Z"
    report = bad["drift_report"]
    assert report["run_id"] == last["run_id"] and report["alerts"]["critical"] == 8
    assert report["feature_drift"]["reference_window"] == [syn.day(7), syn.day(20)]
    assert report["feature_drift"]["recent_window"] == [syn.day(21), syn.day(27)]
    metrics = bad["monitoring_metrics"]
    assert metrics["alerts_critical"] == {"value": 8.0, "step": 0}
    assert metrics[f"feature_psi.{SHIFTED}"]["value"] == metrics["feature_psi_max"]["value"] > 0.25
    assert "score_psi" not in metrics


def test_the_day_table_has_the_contract_columns(runs):
    table = runs["bad"]["data_quality"]
    for column in (
        "event_date",
        "rows_arrived",
        "rows_quarantined",
        "duplicate_rate",
        "late_rows",
        "fraud_rate",
        "amount_p50",
        "amount_p99",
        "row_count_ratio",
        *(f"null_rate_{c}" for c in ("transaction_id", "merchant_id", "amount")),
    ):
        assert column in table.columns


def test_a_rule_on_an_unknown_metric_is_refused(runs, monitoring_params):
    monitoring_params["rules"]["typo"] = {"metric": "null_rat", "warning": 0.1}
    table = runs["clean"]["data_quality"]
    with pytest.raises(
        ValueError, match=r"judge metrics that monitoring does not measure: \{'typo'"
    ):
        nodes.raise_alerts(table, {}, monitoring_params)


def test_no_transactions_at_all_says_what_to_run(ray_session, monitoring_params):
    empty = ray_session.data.from_pandas(syn.transactions(n_days=1).iloc[:0])
    with pytest.raises(
        ValueError, match="nothing to monitor; run `kedro run --pipelines data_gen`"
    ):
        nodes.measure_data_quality(empty, empty, {}, pd.DataFrame(), monitoring_params)


def test_a_bad_as_of_says_what_to_write(monitoring_params):
    with pytest.raises(ValueError, match="monitoring.as_of must be an ISO moment"):
        nodes.run_moment({"as_of": "last tuesday"})
    assert nodes.run_moment({"as_of": "2025-07-15"}).isoformat() == "2025-07-15T00:00:00+00:00"
