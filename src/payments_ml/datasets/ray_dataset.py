"""A Kedro dataset that passes ``ray.data.Dataset`` objects through the catalog as Parquet."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_protocol_and_path
from ray.data.dataset import MaterializedDataset
from ray.data.datasource import FilenameProvider

from payments_ml.config import absolute_path
from payments_ml.datasets.parquet_writes import write_block

logger = logging.getLogger(__name__)

_SCHEMA_FILE = "_schema.parquet"


class RayParquetDataset(AbstractDataset[ray.data.Dataset, ray.data.Dataset]):
    """Parquet folder read and written by Ray Data, optionally Hive-partitioned.

    Writes go to a staging folder first and are then swapped in, so a failed write never
    leaves a half-written dataset. With ``replace_partitions`` only the named partitions
    of the first partition column are replaced (the daily re-run of one day); with
    ``replace_from`` that partition and every later one (a night and the nights after it,
    recomputed together); the rest of the dataset is left untouched. Files whose names
    match ``keep_files`` belong to another writer (the analysts' verdicts in the labels
    feed): a save replaces everything around them and keeps them where they are.

    Example catalog entry::

        raw_transactions:
          type: payments_ml.datasets.RayParquetDataset
          filepath: data/01_raw/transactions
          partition_cols: [event_date]
          replace_partitions: ${runtime_params:data_gen.run_date,null}
    """

    def __init__(
        self,
        *,
        filepath: str,
        partition_cols: list[str] | None = None,
        replace_partitions: str | Iterable[str] | None = None,
        replace_from: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        keep_files: str | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            filepath: Folder of the dataset; local or any fsspec URL (``s3://...``).
            partition_cols: Hive partition columns, outermost first.
            replace_partitions: Values of the first partition column to replace on save;
                ``None`` replaces the whole dataset.
            replace_from: A value of the first partition column: on save, the partitions
                from it on (in string order: ISO dates) are replaced, earlier ones kept.
            load_args: Extra arguments of ``ray.data.read_parquet``.
            save_args: Extra arguments of ``ray.data.Dataset.write_parquet``.
            fs_args: Arguments of the fsspec filesystem.
            metadata: Free-form metadata (Kedro-Viz shows it).
            keep_files: A glob of file names (``analyst-*.parquet``) that a save never
                deletes: copied into the replacement at the same place.
        """
        protocol, path = get_protocol_and_path(filepath)
        self._keep = keep_files
        self._fs = fsspec.filesystem(protocol, **(fs_args or {}))
        self._protocol = protocol
        self._path = self._fs._strip_protocol(path) if protocol != "file" else absolute_path(path)
        self._partition_cols = list(partition_cols or [])
        if isinstance(replace_partitions, str):
            replace_partitions = [replace_partitions]
        self._replace = None if replace_partitions is None else [str(p) for p in replace_partitions]
        self._replace_from = None if replace_from is None else str(replace_from)
        if (self._replace is not None or self._replace_from) and not self._partition_cols:
            raise DatasetError(
                f"replacing partitions ({self._replace or self._replace_from}) needs "
                f"partition_cols for {filepath}"
            )
        if self._replace is not None and self._replace_from is not None:
            raise DatasetError(f"{filepath}: set replace_partitions or replace_from, not both")
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata

    def _uri(self, path: str) -> str:
        return path if self._protocol == "file" else f"{self._protocol}://{path}"

    def load(self) -> ray.data.Dataset:
        """Read the folder lazily (Hive partition values come back as string columns)."""
        if not self._data_files():
            schema_path = f"{self._path}/{_SCHEMA_FILE}"
            if self._fs.exists(schema_path):
                with self._fs.open(schema_path, "rb") as f:
                    return ray.data.from_arrow(pq.read_table(f))
            raise DatasetError(
                f"No Parquet data at {self._uri(self._path)}; run the pipeline that produces it."
            )
        # Ray's default partitioning is Hive: partition values come back as columns.
        return ray.data.read_parquet(self._uri(self._path), **self._load_args)

    def save(self, data: ray.data.Dataset) -> None:
        """Write to a staging folder, then swap it in whole or partition by partition."""
        if not isinstance(data, ray.data.Dataset):
            raise DatasetError(
                f"RayParquetDataset at {self._uri(self._path)} saves ray.data.Dataset, "
                f"got {type(data).__name__}; convert with ray.data.from_pandas(...)."
            )
        parent = str(PurePosixPath(self._path).parent)
        staging = f"{parent}/.{PurePosixPath(self._path).name}.staging-{uuid.uuid4().hex[:8]}"
        try:
            self._write(data, staging)
            self._write_schema(data, staging)
            if self._replace is None and self._replace_from is None:
                self._swap_all(staging)
            else:
                self._swap_partitions(staging)
        finally:
            if self._fs.exists(staging):
                self._fs.rm(staging, recursive=True)
        self._drop_schema_beside_data()

    def _write(self, data: ray.data.Dataset, folder: str) -> None:
        settle_cpu_view()  # a node's tasks may have just finished (see settle_cpu_view)
        if isinstance(data, MaterializedDataset) and not self._save_args:
            # Blocks already sit in the object store: one light task per block writes them,
            # without the streaming executor's fixed cost (seconds on small clusters).
            refs = data.to_arrow_refs()
            write = write_block.options(name="write_parquet_block")
            tasks = [
                write.remote(ref, self._uri(folder), self._partition_cols, f"part-{i:05d}")
                for i, ref in enumerate(refs)
            ]
            rows = sum(ray.get(tasks))
        else:
            # File names from the task's position, not a random id: rewriting the same
            # data gives the same files (a rerun of a night changes no byte). The staging
            # folder is new, so the write may own it (Ray asks for OVERWRITE then).
            args = {
                "partition_cols": self._partition_cols or None,
                "filename_provider": _PartFiles(),
                "mode": ray.data.SaveMode.OVERWRITE,
            } | self._save_args
            data.write_parquet(self._uri(folder), **args)
            rows = None
        self._fs.makedirs(folder, exist_ok=True)
        if rows is not None:
            logger.info(
                "Wrote %d rows in %d block(s) to %s", rows, len(tasks), self._uri(self._path)
            )

    def _write_schema(self, data: ray.data.Dataset, folder: str) -> None:
        # Known without running the plan only for materialized data; lets empty outputs load.
        schema = data.schema(fetch_if_missing=False)
        if schema is None:
            return
        with self._fs.open(f"{folder}/{_SCHEMA_FILE}", "wb") as f:
            pq.write_table(arrow_schema(schema).empty_table(), f)

    def _drop_schema_beside_data(self) -> None:
        # The schema file lets an empty dataset load. Beside data files, readers that take
        # every *.parquet of the folder (Dask, so Feast's file offline store) read it as a
        # part without the Hive partition columns, and fail.
        schema_path = f"{self._path}/{_SCHEMA_FILE}"
        if self._fs.exists(schema_path) and self._data_files():
            self._fs.rm(schema_path)

    def _keep_in(self, folder: str, staging: str) -> bool:
        """Copy the files of ``folder`` (under this dataset's path) matching ``keep_files``
        to the same place under ``staging``; True when there were any."""
        if not self._keep or not self._fs.exists(folder):
            return False
        kept = [f for f in self._fs.find(folder) if fnmatch(PurePosixPath(f).name, self._keep)]
        for source in kept:
            target = f"{staging}/{PurePosixPath(source).relative_to(self._path)}"
            self._fs.makedirs(str(PurePosixPath(target).parent), exist_ok=True)
            self._fs.copy(source, target)
        return bool(kept)

    def _swap_all(self, staging: str) -> None:
        self._keep_in(self._path, staging)
        if self._fs.exists(self._path):
            self._fs.rm(self._path, recursive=True)
        self._fs.mv(staging, self._path, recursive=True)

    def _swap_partitions(self, staging: str) -> None:
        column = self._partition_cols[0]
        written = {PurePosixPath(p).name for p in self._fs.ls(staging, detail=False)}
        partitions = {w for w in written if w.startswith(f"{column}=")}
        if self._replace_from is None:
            wanted = {f"{column}={value}" for value in self._replace}
            what = f"only {sorted(wanted)} were to be replaced"
        else:
            existing = self._partitions(column) | partitions
            wanted = {p for p in existing if p.split("=", 1)[1] >= self._replace_from}
            what = f"only {column} >= {self._replace_from} was to be replaced"
        stray = partitions - wanted
        if stray:
            raise DatasetError(
                f"Refusing to write {sorted(stray)} to {self._uri(self._path)}: {what}. "
                "Fix the producing node, or clear the replacement to rewrite the whole dataset."
            )
        self._fs.makedirs(self._path, exist_ok=True)
        for name in sorted(wanted):
            target = f"{self._path}/{name}"
            if self._keep_in(target, staging):
                written.add(name)
            if self._fs.exists(target):
                self._fs.rm(target, recursive=True)
            if name in written:
                self._fs.mv(f"{staging}/{name}", target, recursive=True)
        if _SCHEMA_FILE in written:
            self._fs.mv(f"{staging}/{_SCHEMA_FILE}", f"{self._path}/{_SCHEMA_FILE}")
        logger.info("Replaced partitions %s of %s", sorted(wanted), self._uri(self._path))

    def _partitions(self, column: str) -> set[str]:
        if not self._fs.exists(self._path):
            return set()
        names = (PurePosixPath(p).name for p in self._fs.ls(self._path, detail=False))
        return {name for name in names if name.startswith(f"{column}=")}

    def _data_files(self) -> list[str]:
        if not self._fs.exists(self._path):
            return []
        return [
            f
            for f in self._fs.find(self._path)
            if f.endswith(".parquet") and not PurePosixPath(f).name.startswith(("_", "."))
        ]

    def _exists(self) -> bool:
        return bool(self._data_files()) or self._fs.exists(f"{self._path}/{_SCHEMA_FILE}")

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._uri(self._path),
            "partition_cols": self._partition_cols,
            "replace_partitions": self._replace,
            "replace_from": self._replace_from,
            "load_args": self._load_args,
            "save_args": self._save_args,
            "keep_files": self._keep,
        }


class _PartFiles(FilenameProvider):
    """``part-00000.parquet``, numbered by write task (the order of the blocks)."""

    def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
        return f"part-{task_index:05d}.parquet"


def settle_cpu_view(timeout_s: float = 1.0) -> None:
    """Wait (at most ``timeout_s``) until Ray's resource view shows a free CPU.

    The view lags the tasks that just finished (raylets report every 100 ms or so), and a
    Ray Data execution started meanwhile, as a node's output is saved right after its
    tasks, warns "The Dataset job will hang unless more CPUs are freed up" for CPUs that
    are already free. A cluster whose CPUs are truly busy still gets the warning.
    """
    deadline = time.monotonic() + timeout_s
    while not ray.available_resources().get("CPU") and time.monotonic() < deadline:
        time.sleep(0.05)


def arrow_schema(schema: Any) -> pa.Schema:
    """The Arrow schema of a Ray Dataset's schema, whatever its blocks are.

    Ray reports Arrow types for Arrow blocks; for pandas blocks its ``Schema.types``
    gives ``None`` for tz-aware timestamps, so the block schema's dtypes are used.
    """
    if isinstance(schema, pa.Schema):
        return schema
    types = getattr(schema.base_schema, "types", None) or schema.types
    return pa.schema([(n, _arrow_type(t)) for n, t in zip(schema.names, types, strict=True)])


def _arrow_type(dtype: Any) -> pa.DataType:
    if isinstance(dtype, pa.DataType):
        return dtype
    if isinstance(dtype, pd.ArrowDtype):
        return dtype.pyarrow_dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return pa.timestamp(dtype.unit, tz=str(dtype.tz))
    if np.dtype(dtype) == np.dtype(object):
        return pa.string()  # object columns: strings in this project
    return pa.from_numpy_dtype(dtype)


def to_pandas(dataset: ray.data.Dataset) -> pd.DataFrame:
    """A small Dataset as pandas with numpy dtypes (Dataset.to_pandas gives Arrow-backed ones)."""
    tables = ray.get(dataset.to_arrow_refs())
    return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame()
