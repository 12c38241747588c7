"""Kedro datasets the catalog needs that kedro-datasets lacks."""

from payments_ml.datasets.ray_dataset import RayParquetDataset

__all__ = ["RayParquetDataset"]
