"""monitoring: data quality per day, feature and score drift, alerts."""

from payments_ml.pipelines.monitoring.pipeline import create_pipeline

__all__ = ["create_pipeline"]
