"""One night at a time: a full build over N-1 days, then night N, equals a full build over N.

The pipeline runs as `kedro run --pipelines features [--params features.run_date=D]`
runs it (the labels step first), over the catalog's own dataset types in a temporary
folder: the raw days and the labels feed in `RayParquetDataset` partitions, read back
through the lazy views, and outputs that replace only the night's partition. The labels
arrive by report day, so night N also brings late reports of earlier days' frauds, which
update the merchant windows exactly as the full build counts them. Feast and the online
store are compared too.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import ParquetDataset

from payments_ml.datasets import ParquetFilesDataset, RayParquetDataset
from payments_ml.labels.feed import chargebacks
from payments_ml.pipelines import labels as labels_stage
from payments_ml.pipelines.features import create_pipeline
from tests.feature_store.conftest import feast_config
from tests.project import assert_same_rows, sorted_rows

pytestmark = pytest.mark.usefixtures("ray_session")

DELAY = 7
DAYS = 45
START = dt.date(2025, 3, 1)
LAST = str(START + dt.timedelta(days=DAYS - 1))
GAP = 5  # customers active on the last day, with nothing in the 30 days before it


@pytest.fixture(scope="module")
def history(base_params) -> pd.DataFrame:
    """45 days of a small world; a few customers of the last day are made to come back
    after more than 30 quiet days (their last transaction is only in the older days)."""
    from payments_ml.contracts import split_by_contract  # noqa: PLC0415
    from payments_ml.data_gen import generator as g  # noqa: PLC0415

    params = copy.deepcopy(base_params) | {"n_customers": 400, "n_merchants": 80, "n_regions": 4}
    valid, _ = split_by_contract(g.generate_days(g.world_of(params), START, DAYS))
    date = valid["event_timestamp"].dt.strftime("%Y-%m-%d")
    last_day = valid.loc[date == LAST, "customer_id"].unique()
    early = valid.loc[date < str(START + dt.timedelta(days=DAYS - 31)), "customer_id"].unique()
    back = [c for c in last_day if c in set(early)][:GAP]
    assert len(back) == GAP
    quiet = (date >= str(START + dt.timedelta(days=DAYS - 31))) & (date < LAST)
    return valid[~(valid["customer_id"].isin(back) & quiet)].reset_index(drop=True)


def _catalog(root: Path, raw: pd.DataFrame, run_date: str | None, ray_session: Any) -> DataCatalog:
    """The features part of conf/base/catalog.yml under ``root``."""

    def nightly(name: str, column: str) -> RayParquetDataset:
        return RayParquetDataset(
            filepath=str(root / name), partition_cols=[column], replace_from=run_date
        )

    source = RayParquetDataset(filepath=str(root / "raw"), partition_cols=["event_date"])
    if not (root / "raw").exists():
        frame = raw.assign(event_date=raw["event_timestamp"].dt.strftime("%Y-%m-%d"))
        source.save(ray_session.data.from_pandas(frame))
        _reports_of(root, raw, ray_session)
    params = {"label_delay_days": DELAY, "partitions": 3, "run_date": run_date}
    return DataCatalog(
        {
            "raw_transactions": source,
            "raw_transaction_files": ParquetFilesDataset(filepath=str(root / "raw")),
            "transactions_by_customer": MemoryDataset(copy_mode="assign"),
            "merchant_days": ParquetDataset(filepath=str(root / "merchant_days.parquet")),
            "stored_merchant_days": ParquetFilesDataset(
                filepath=str(root / "merchant_days.parquet"), partitioning=None
            ),
            "merchant_snapshots": nightly("merchant_snapshots", "run_date"),
            "customer_snapshots": nightly("customer_snapshots", "run_date"),
            "training_set@ray": nightly("training_set", "event_date"),
            "label_reports": ParquetFilesDataset(filepath=str(root / "labels")),
            "transaction_labels": ParquetDataset(filepath=str(root / "labels.parquet")),
            "labels_quarantine": MemoryDataset(),
            "labels_summary": MemoryDataset(),
            "params:features": MemoryDataset(params),
            "params:feast": MemoryDataset(_feast(root)),
            "feature_store_definitions": MemoryDataset(),
            "online_materialization": JSONDataset(filepath=str(root / "online.json")),
        }
    )


def _feast(root: Path) -> dict[str, Any]:
    config = feast_config(root / "feast")
    config["sources"].update(
        customer_snapshots=str(root / "customer_snapshots"),
        merchant_snapshots=str(root / "merchant_snapshots"),
    )
    return config


def _reports_of(root: Path, rows: pd.DataFrame, ray_session: Any, day: str | None = None) -> None:
    """The labels feed of ``rows``' frauds, as data_gen writes it: the reports that arrived
    by the last day of ``rows`` (with ``day``: that day's partition only)."""
    days = rows["event_timestamp"].dt.floor("D").astype("int64") // 86_400 // 10**9
    first = days.max() if day else days.min()
    reports = chargebacks(rows, int(first), int(days.max()))
    RayParquetDataset(
        filepath=str(root / "labels"), partition_cols=["report_date"], replace_partitions=day
    ).save(ray_session.data.from_pandas(reports))


def _build(
    root: Path, raw: pd.DataFrame, ray_session: Any, run_date: str | None = None, feast=True
) -> None:
    pipeline = labels_stage.create_pipeline() + create_pipeline()
    if not feast:
        pipeline = pipeline.to_outputs(
            "training_set@ray", "customer_snapshots", "merchant_snapshots"
        )
    SequentialRunner().run(pipeline, _catalog(root, raw, run_date, ray_session))


def _day(i: int) -> str:
    return str(START + dt.timedelta(days=i))


def _replace_raw_day(root: Path, rows: pd.DataFrame, day: str, ray_session: Any) -> None:
    """A day arriving (or corrected) in raw_transactions, as data_gen --params run_date does."""
    RayParquetDataset(
        filepath=str(root / "raw"), partition_cols=["event_date"], replace_partitions=day
    ).save(ray_session.data.from_pandas(rows.assign(event_date=day)))
    history = ParquetFilesDataset(filepath=str(root / "raw")).load().to_table().to_pandas()
    _reports_of(root, history[history["event_date"].astype(str) <= day], ray_session, day)


def _read(root: Path, name: str, keys: list[str]) -> pd.DataFrame:
    return sorted_rows(pd.read_parquet(root / name), keys)


def _online(root: Path, ids: dict[str, list[int]]) -> dict[str, pd.DataFrame]:
    from payments_ml.feature_store import store as fs  # noqa: PLC0415

    store = fs.open_store(_feast(root))
    return {
        view: fs.read_online(store, view, key, pd.Series(values).to_numpy())
        for view, (key, values) in ids.items()
    }


@pytest.fixture(scope="module")
def ray_data_as_configured(ray_session):
    """ray.yml's Ray Data reader (the Ray hook applies it only to a cluster it starts)."""
    context = ray_session.data.DataContext.get_current()
    previous, context.use_datasource_v2 = context.use_datasource_v2, False
    yield
    context.use_datasource_v2 = previous


@pytest.fixture(scope="module")
def builds(tmp_path_factory, history, ray_session, ray_data_as_configured) -> dict[str, Path]:
    """A full build over 45 days; a full build over 44 days and then the 45th night."""
    full, nightly = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("nightly")
    _build(full, history, ray_session)
    earlier = history[history["event_timestamp"].dt.strftime("%Y-%m-%d") < LAST]
    _build(nightly, earlier, ray_session)
    last = history[history["event_timestamp"].dt.strftime("%Y-%m-%d") == LAST]
    _replace_raw_day(nightly, last, LAST, ray_session)
    _build(nightly, history, ray_session, run_date=LAST)
    return {"full": full, "nightly": nightly}


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("training_set", ["transaction_id"]),
        ("customer_snapshots", ["customer_id", "snapshot_ts"]),
        ("merchant_snapshots", ["merchant_id", "snapshot_ts"]),
        ("merchant_days.parquet", ["merchant_id", "day"]),
    ],
)
def test_the_night_equals_the_full_build(builds, name, keys):
    full, nightly = (_read(builds[side], name, keys) for side in ("full", "nightly"))
    assert_same_rows(nightly, full)


def test_customers_back_after_a_month_get_their_true_last_transaction(builds, history):
    rows = _read(builds["nightly"], "training_set", ["transaction_id"])
    last_day = rows[rows["event_date"] == LAST]
    first_of_day = last_day.sort_values("event_timestamp").drop_duplicates("customer_id")
    long_quiet = first_of_day["seconds_since_last_customer_tx"] > 30 * 86_400
    assert long_quiet.sum() >= GAP  # from the stand-in of their last transaction


def test_the_online_store_ends_as_after_the_full_build(builds, history):
    ids = {
        "customer_snapshot": ("customer_id", sorted(history["customer_id"].unique())),
        "merchant_snapshot": ("merchant_id", sorted(history["merchant_id"].unique())),
    }
    full, nightly = _online(builds["full"], ids), _online(builds["nightly"], ids)
    for view in ids:
        pd.testing.assert_frame_equal(nightly[view], full[view])


def test_a_rerun_of_the_night_rewrites_the_same_bytes(builds, history, ray_session):
    def digest() -> dict[str, str]:
        root = builds["nightly"]
        return {
            str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for name in ("training_set", "customer_snapshots", "merchant_snapshots")
            for path in sorted((root / name).rglob(f"*={LAST}/*.parquet"))
        }

    before = digest()
    assert before
    _build(builds["nightly"], history, ray_session, run_date=LAST, feast=False)
    assert digest() == before


def test_a_night_without_transactions_is_refused(builds, history, ray_session):
    with pytest.raises(Exception, match="no transactions on 2025-04-15 in raw_transactions"):
        _build(builds["nightly"], history, ray_session, run_date=_day(DAYS))


def test_a_corrected_day_rebuilds_it_and_every_later_night(builds, history, ray_session, tmp_path):
    """Day 42 is corrected after nights 43 and 44 were built: its night rebuilds them all,
    and the result equals a full build over the corrected history."""
    corrected_day = _day(DAYS - 3)
    on_day = history["event_timestamp"].dt.strftime("%Y-%m-%d") == corrected_day
    dropped = history.index[on_day][::7]  # a seventh of the day's rows were wrong
    corrected = history.drop(dropped)
    full = tmp_path / "full"
    _build(full, corrected, ray_session, feast=False)
    nightly = tmp_path / "nightly"
    shutil.copytree(builds["nightly"], nightly)
    _replace_raw_day(nightly, corrected[on_day.loc[corrected.index]], corrected_day, ray_session)
    _build(nightly, corrected, ray_session, run_date=corrected_day, feast=False)
    for name, keys in [
        ("training_set", ["transaction_id"]),
        ("customer_snapshots", ["customer_id", "snapshot_ts"]),
        ("merchant_snapshots", ["merchant_id", "snapshot_ts"]),
    ]:
        expected, got = _read(full, name, keys), _read(nightly, name, keys)
        assert len(got) == len(expected), name
        pd.testing.assert_frame_equal(got, expected, rtol=1e-9, atol=0)


def test_a_night_after_a_gap_is_refused_naming_the_nights_to_build(builds, history, ray_session):
    with pytest.raises(Exception, match=r"build the nights 2025-04-15\.\.2025-04-15 first"):
        _build(builds["nightly"], history, ray_session, run_date=_day(DAYS + 1))
