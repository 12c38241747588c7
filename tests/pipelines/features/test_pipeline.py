"""The features pipeline on Ray Data equals the plain reference on generated data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import ray
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from payments_ml.datasets import ParquetFilesDataset
from payments_ml.features import windows as fw
from payments_ml.features.definitions import FEATURES, TRAINING_SET_COLUMNS
from payments_ml.pipelines.features import create_pipeline, nodes
from tests.features.reference import reference_features

pytestmark = pytest.mark.usefixtures("ray_session")

DELAY = 7


def write_days(transactions: pd.DataFrame, folder: Path) -> Path:
    """``transactions`` as the raw folder holds them: Parquet, one Hive folder per day."""
    days = fw.iso_days(fw.day_of(fw.to_ns(transactions["event_timestamp"])))
    transactions.assign(event_date=days).to_parquet(folder, partition_cols=["event_date"])
    return folder


@pytest.fixture(scope="module")
def outputs(ray_session, generated_transactions, tmp_path_factory) -> dict[str, pd.DataFrame]:
    nothing = tmp_path_factory.mktemp("nothing_stored")  # a full build reads no stored state
    raw = write_days(generated_transactions, tmp_path_factory.mktemp("raw"))
    catalog = DataCatalog(
        {
            "raw_transactions": MemoryDataset(None),  # only orders the nodes after its writer
            "raw_transaction_files": ParquetFilesDataset(filepath=str(raw)),
            "stored_merchant_days": ParquetFilesDataset(filepath=str(nothing / "days")),
            "params:features": MemoryDataset({"label_delay_days": DELAY, "partitions": 3}),
            "training_set@ray": MemoryDataset(copy_mode="assign"),
            "customer_snapshots": MemoryDataset(copy_mode="assign"),
            "merchant_snapshots": MemoryDataset(),
            "merchant_days": MemoryDataset(),
            "transactions_by_customer": MemoryDataset(copy_mode="assign"),
            "transaction_labels": MemoryDataset(pd.DataFrame()),  # no labels feed
        }
    )
    compute = create_pipeline().to_outputs(
        "training_set@ray", "customer_snapshots", "merchant_snapshots"
    )
    SequentialRunner().run(compute, catalog)
    return {
        "training_set": catalog.load("training_set@ray").to_pandas(),
        "customer_snapshots": catalog.load("customer_snapshots").to_pandas(),
        "merchant_snapshots": catalog.load("merchant_snapshots").to_pandas(),
    }


def test_training_set_has_every_transaction_and_column(outputs, generated_transactions):
    rows = outputs["training_set"]
    assert len(rows) == len(generated_transactions)
    assert set(rows["transaction_id"]) == set(generated_transactions["transaction_id"])
    assert list(rows.columns) == [*TRAINING_SET_COLUMNS, "event_date"]


def test_ray_features_equal_the_reference(outputs, generated_transactions):
    rows = outputs["training_set"].set_index("transaction_id")
    expected = reference_features(generated_transactions, DELAY)
    pd.testing.assert_frame_equal(
        rows.loc[expected.index, FEATURES].astype(float).reset_index(drop=True),
        expected[FEATURES].astype(float).reset_index(drop=True),
        rtol=1e-9,
        atol=1e-9,
    )


def test_customer_snapshots_cover_every_customer_once_per_change(outputs, generated_transactions):
    snapshots = outputs["customer_snapshots"]
    assert set(snapshots["customer_id"]) == set(generated_transactions["customer_id"])
    assert not snapshots.duplicated(["customer_id", "snapshot_ts"]).any()
    last_day = fw.day_of(fw.to_ns(generated_transactions["event_timestamp"])).max()
    assert fw.day_of(fw.to_ns(snapshots["snapshot_ts"])).max() == last_day + 1


def test_merchant_snapshots_end_the_day_after_the_data(outputs, generated_transactions):
    snapshots = outputs["merchant_snapshots"]
    assert set(snapshots["merchant_id"]) <= set(generated_transactions["merchant_id"])
    assert snapshots["merchant_fraud_rate_30d"].between(0, 1).all()
    last_day = fw.day_of(fw.to_ns(generated_transactions["event_timestamp"])).max()
    assert fw.day_of(fw.to_ns(snapshots["snapshot_ts"])).max() <= last_day + 1


def test_a_negative_label_delay_is_refused(ray_session):
    from payments_ml.pipelines.features.nodes import aggregate_merchant_days  # noqa: PLC0415

    with pytest.raises(ValueError, match="features.label_delay_days must be >= 0, got -1"):
        aggregate_merchant_days(
            ray_session.data.range(1), None, pd.DataFrame(), {"label_delay_days": -1}
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="amount"), "raw_transactions: missing column 'amount'"),
        (
            lambda f: f.assign(customer_id=f["customer_id"].astype(str)),
            "raw_transactions: column 'customer_id' should be int64, found string",
        ),
    ],
)
def test_a_bad_source_fails_naming_the_column(generated_transactions, tmp_path, change, message):
    from payments_ml.pipelines.features.nodes import partition_by_customer  # noqa: PLC0415

    source = write_days(change(generated_transactions.head(100)), tmp_path / "raw")
    with pytest.raises(ValueError, match=message):
        partition_by_customer(None, ParquetFilesDataset(filepath=str(source)).load(), None, {})


def test_customer_partitions_are_two_per_cpu_and_at_most_a_set_number_of_rows(
    tmp_path, monkeypatch
):
    pd.DataFrame({"customer_id": range(1050)}).to_parquet(tmp_path / "part-0.parquet")
    files = ParquetFilesDataset(filepath=str(tmp_path), partitioning=None).load()
    cpus = int(ray.cluster_resources()["CPU"])
    assert nodes.customer_partitions(files) == 2 * cpus  # few rows: 2 per CPU
    monkeypatch.setattr(nodes, "ROWS_PER_PARTITION", 100)
    assert nodes.customer_partitions(files) == max(2 * cpus, 11)  # 1050 rows: 11 of <= 100
