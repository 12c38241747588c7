"""The monitoring pipeline's Kedro datasets: alert log, state, the scorer's Parquet log."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from payments_ml.monitoring.datasets import AlertLogDataset, JSONStateDataset, ParquetLogDataset


def test_the_alert_log_appends_on_every_save(tmp_path):
    dataset = AlertLogDataset(filepath=str(tmp_path / "reporting" / "alerts.jsonl"))
    assert dataset.load() == [] and not dataset.exists()
    line = {"severity": "warning", "timestamp": "2025-07-01T00:00:00Z", "metric": "m"}
    dataset.save([line | {"run_id": "a"}])
    dataset.save([line | {"run_id": "b"}, line | {"run_id": "b", "severity": "info"}])
    assert [row["run_id"] for row in dataset.load()] == ["a", "b", "b"]
    with pytest.raises(DatasetError, match="saves a list of alert lines, got dict"):
        dataset.save(line)


def test_the_state_is_empty_before_the_first_save_and_replaced_after(tmp_path):
    path = tmp_path / "state" / "monitoring_state.json"
    dataset = JSONStateDataset(filepath=str(path))
    assert dataset.load() == {} and not dataset.exists()
    dataset.save({"days": {"2025-06-01": {"rows": 3}}})
    dataset.save({"days": {"2025-06-01": {"rows": 4}}})
    assert JSONStateDataset(filepath=str(path)).load() == {"days": {"2025-06-01": {"rows": 4}}}
    assert [p.name for p in path.parent.iterdir()] == ["monitoring_state.json"]


def test_the_scored_log_is_none_until_the_scorer_writes(tmp_path):
    folder = tmp_path / "scored_transactions"
    dataset = ParquetLogDataset(filepath=str(folder))
    assert dataset.load() is None and not dataset.exists()
    folder.mkdir()
    (folder / ".staging-1").mkdir()
    pq.write_table(pa.table({"x": [1]}), folder / ".staging-1" / "part-0.parquet")
    pq.write_table(pa.table({"x": pa.array([], pa.int64())}), folder / "_schema.parquet")
    assert dataset.load() is None  # hidden and underscore files are not data


def test_the_scored_log_reads_hive_partitions_and_skips_files_being_written(tmp_path):
    folder = tmp_path / "scored_transactions"
    for day, values in (("2025-06-01", [0.1, 0.2]), ("2025-06-02", [0.3])):
        (folder / f"event_date={day}").mkdir(parents=True)
        pq.write_table(
            pa.table(
                {
                    "fraud_probability": values,
                    "scored_at": pa.array(
                        [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)] * len(values),
                        pa.timestamp("ns", tz="UTC"),
                    ),
                }
            ),
            folder / f"event_date={day}" / "part-0.parquet",
        )
    (folder / "event_date=2025-06-02" / "part-1.parquet").write_bytes(b"PAR1 half-writ")
    log = ParquetLogDataset(filepath=str(folder)).load()
    frame = log.to_table().to_pandas().sort_values("fraud_probability")
    assert frame["event_date"].astype(str).tolist() == ["2025-06-01", "2025-06-01", "2025-06-02"]
    assert isinstance(frame["scored_at"].dtype, pd.DatetimeTZDtype)
    with pytest.raises(DatasetError, match="read-only view in Kedro; no node may output it"):
        ParquetLogDataset(filepath=str(folder)).save(frame)
