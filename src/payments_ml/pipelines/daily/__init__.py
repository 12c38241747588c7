"""daily: one night of the loop; pipeline_registry composes it from the stages."""

from payments_ml.pipelines.daily.pipeline import create_pipeline

__all__ = ["create_pipeline"]
