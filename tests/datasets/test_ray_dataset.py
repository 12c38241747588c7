"""RayParquetDataset: round trip, whole and per-partition replace, failures leave data intact."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from payments_ml.datasets import RayParquetDataset

pytestmark = pytest.mark.usefixtures("ray_session")


def _frame(days: dict[str, range]) -> pd.DataFrame:
    return pd.concat(
        [pd.DataFrame({"x": list(values), "event_date": day}) for day, values in days.items()],
        ignore_index=True,
    )


def _load(dataset: RayParquetDataset) -> pd.DataFrame:
    frame = dataset.load().to_pandas()
    return frame.astype({"x": "int64", "event_date": str}).sort_values("x", ignore_index=True)


def _partitions(path: str) -> list[str]:
    return sorted(name for name in os.listdir(path) if not name.startswith("_"))


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "table")


def test_round_trip_with_hive_partitions(ray_session, path):
    data = _frame({"2025-01-01": range(3), "2025-01-02": range(3, 6)})
    dataset = RayParquetDataset(filepath=path, partition_cols=["event_date"])
    assert not dataset.exists()
    dataset.save(ray_session.data.from_pandas(data))
    assert dataset.exists()
    assert _partitions(path) == ["event_date=2025-01-01", "event_date=2025-01-02"]
    pd.testing.assert_frame_equal(_load(dataset), data)


def test_a_full_save_replaces_everything(ray_session, path):
    dataset = RayParquetDataset(filepath=path, partition_cols=["event_date"])
    dataset.save(
        ray_session.data.from_pandas(_frame({"2025-01-01": range(3), "2025-01-02": range(3, 6)}))
    )
    dataset.save(ray_session.data.from_pandas(_frame({"2025-01-03": range(10, 12)})))
    assert _partitions(path) == ["event_date=2025-01-03"]


def test_replace_partitions_rewrites_only_the_named_day(ray_session, path):
    full = RayParquetDataset(filepath=path, partition_cols=["event_date"])
    full.save(
        ray_session.data.from_pandas(_frame({"2025-01-01": range(3), "2025-01-02": range(3, 6)}))
    )
    untouched = next(
        os.path.join(path, "event_date=2025-01-01", f)
        for f in os.listdir(f"{path}/event_date=2025-01-01")
    )
    before = os.stat(untouched).st_mtime_ns
    one_day = RayParquetDataset(
        filepath=path, partition_cols=["event_date"], replace_partitions="2025-01-02"
    )
    one_day.save(ray_session.data.from_pandas(_frame({"2025-01-02": range(40, 42)})))
    assert list(_load(full)["x"]) == [0, 1, 2, 40, 41]
    assert os.stat(untouched).st_mtime_ns == before


def test_replacing_a_day_with_no_rows_empties_that_partition(ray_session, path):
    full = RayParquetDataset(filepath=path, partition_cols=["event_date"])
    full.save(
        ray_session.data.from_pandas(_frame({"2025-01-01": range(3), "2025-01-02": range(3, 6)}))
    )
    empty = ray_session.data.from_pandas(_frame({"2025-01-02": range(0)})).materialize()
    RayParquetDataset(
        filepath=path, partition_cols=["event_date"], replace_partitions=["2025-01-02"]
    ).save(empty)
    assert list(_load(full)["x"]) == [0, 1, 2]


def test_other_writers_files_survive_a_partition_replace_and_a_full_save(ray_session, path):
    """The labels feed: a night's data_gen or ingest replaces its report day, the
    analysts' verdict files of that day stay (``keep_files``)."""
    kept = {"keep_files": "analyst-*.parquet", "partition_cols": ["event_date"]}
    RayParquetDataset(filepath=path, **kept).save(
        ray_session.data.from_pandas(_frame({"2025-01-01": range(3), "2025-01-02": range(3, 6)}))
    )
    verdict = pa.table({"x": [99]})
    pq.write_table(verdict, f"{path}/event_date=2025-01-02/analyst-1.parquet")
    night = RayParquetDataset(filepath=path, replace_partitions="2025-01-02", **kept)
    night.save(ray_session.data.from_pandas(_frame({"2025-01-02": range(40, 42)})))
    assert list(_load(night)["x"]) == [0, 1, 2, 40, 41, 99]
    RayParquetDataset(filepath=path, **kept).save(
        ray_session.data.from_pandas(_frame({"2025-01-03": range(7, 8)}))
    )
    assert _partitions(path) == ["event_date=2025-01-02", "event_date=2025-01-03"]
    assert os.listdir(f"{path}/event_date=2025-01-02") == ["analyst-1.parquet"]


def test_rows_outside_the_replaced_partitions_are_refused(ray_session, path):
    full = RayParquetDataset(filepath=path, partition_cols=["event_date"])
    full.save(ray_session.data.from_pandas(_frame({"2025-01-01": range(3)})))
    one_day = RayParquetDataset(
        filepath=path, partition_cols=["event_date"], replace_partitions="2025-01-02"
    )
    with pytest.raises(DatasetError, match="Refusing to write \\['event_date=2025-01-01'\\]"):
        one_day.save(ray_session.data.from_pandas(_frame({"2025-01-01": range(7, 8)})))
    assert list(_load(full)["x"]) == [0, 1, 2]
    assert os.listdir(os.path.dirname(path)) == ["table"]  # no staging folder left behind


def test_a_failed_write_leaves_the_previous_data(ray_session, path):
    dataset = RayParquetDataset(filepath=path, partition_cols=["event_date"])
    dataset.save(ray_session.data.from_pandas(_frame({"2025-01-01": range(3)})))

    def explode(batch):
        raise RuntimeError("boom")

    broken = ray_session.data.from_pandas(_frame({"2025-01-05": range(3)})).map_batches(explode)
    with pytest.raises(DatasetError, match="boom"):
        dataset.save(broken)
    assert list(_load(dataset)["x"]) == [0, 1, 2]
    assert os.listdir(os.path.dirname(path)) == ["table"]


def test_an_empty_materialized_dataset_saves_and_loads(ray_session, path):
    dataset = RayParquetDataset(filepath=path, partition_cols=["event_date"])
    empty = ray_session.data.from_pandas(_frame({"2025-01-01": range(0)})).materialize()
    dataset.save(empty)
    assert dataset.exists()
    assert dataset.load().count() == 0


def test_an_empty_pandas_dataset_keeps_its_column_types(ray_session, path):
    frame = pd.DataFrame(
        {"t": pd.to_datetime(["2025-01-01"], utc=True), "s": ["a"], "n": [1]}
    ).iloc[:0]
    RayParquetDataset(filepath=path).save(ray_session.data.from_pandas(frame).materialize())
    schema = pq.read_schema(os.path.join(path, "_schema.parquet"))
    assert schema.field("t").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("s").type == pa.string() and schema.field("n").type == pa.int64()


def test_loading_nothing_says_what_to_run(path):
    with pytest.raises(DatasetError, match="No Parquet data at .*table; run the pipeline"):
        RayParquetDataset(filepath=path).load()


def test_saving_pandas_says_how_to_convert(path):
    with pytest.raises(DatasetError, match="saves ray.data.Dataset, got DataFrame"):
        RayParquetDataset(filepath=path).save(pd.DataFrame({"x": [1]}))


def test_replace_partitions_needs_partition_columns(path):
    with pytest.raises(DatasetError, match="needs partition_cols"):
        RayParquetDataset(filepath=path, replace_partitions="2025-01-01")


@pytest.mark.parametrize(
    "days",
    [
        ["2025-03-01"] * 3,  # one plain partition: written whole, not split
        ["2025-03-01", "2025-03-01", "2025-03-02"],  # two runs: written run by run
        ["2025-03-01", "2025-03-02", "2025-03-01"],  # a partition in two runs: split
        ["a b/c"] * 3,  # a value Hive's paths escape: split
    ],
)
def test_a_block_is_written_where_the_split_would_put_it(tmp_path, days):
    import pyarrow.dataset as pa_ds  # noqa: PLC0415

    from payments_ml.datasets.parquet_writes import write_parquet_block  # noqa: PLC0415

    table = pa.table({"id": ["x", "y", "z"], "amount": [1.5, 2.0, None], "event_date": days})
    written = {}
    for side, write in (("ours", write_parquet_block), ("split", _split_write)):
        folder = tmp_path / side
        assert write(table, folder.as_uri(), ["event_date"], "part-00007") == 3
        written[side] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
        back = pa_ds.dataset(folder, format="parquet", partitioning="hive").to_table()
        assert back.sort_by("id").select(["id", "amount"]).equals(table.select(["id", "amount"]))
    assert written["ours"] == written["split"]  # the same file names in the same folders


def _split_write(table, folder, partition_cols, name):
    import pyarrow.dataset as pa_ds  # noqa: PLC0415

    path = folder.removeprefix("file://")
    pa_ds.write_dataset(
        table, path, format="parquet", partitioning=partition_cols,
        partitioning_flavor="hive", basename_template=f"{name}-{{i}}.parquet",
    )  # fmt: skip
    return table.num_rows
