"""Kedro datasets the catalog needs that kedro-datasets lacks."""

from payments_ml.datasets.parquet_files import (
    OptionalJSONDataset,
    OptionalParquetDataset,
    ParquetFilesDataset,
)
from payments_ml.datasets.ray_dataset import RayParquetDataset, arrow_schema, to_pandas

__all__ = [
    "OptionalJSONDataset",
    "OptionalParquetDataset",
    "ParquetFilesDataset",
    "RayParquetDataset",
    "arrow_schema",
    "to_pandas",
]
