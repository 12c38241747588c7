"""Kedro datasets the catalog needs that kedro-datasets lacks, and the Ray tasks that
read and write files for the pipelines.

The datasets are imported on first use (PEP 562): a Ray worker that imports this package
for a reading or writing task (``file_tasks``, ``csv_ranges``, ``parquet_writes``) does
not pay for Kedro, kedro-datasets and Ray Data, about 0.4 s before its first task.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "OptionalJSONDataset": "parquet_files",
    "OptionalParquetDataset": "parquet_files",
    "ParquetFilesDataset": "parquet_files",
    "RayParquetDataset": "ray_dataset",
    "arrow_schema": "ray_dataset",
    "to_pandas": "ray_dataset",
}

__all__ = [
    "OptionalJSONDataset",
    "OptionalParquetDataset",
    "ParquetFilesDataset",
    "RayParquetDataset",
    "arrow_schema",
    "to_pandas",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:  # the names of __all__
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]
