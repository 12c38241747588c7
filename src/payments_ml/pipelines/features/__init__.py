"""features: day-aligned window features with Ray Data; snapshots for Feast, the model input."""

from payments_ml.pipelines.features.pipeline import create_pipeline

__all__ = ["create_pipeline"]
