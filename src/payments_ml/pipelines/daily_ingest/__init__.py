"""daily_ingest: one night of the loop on your own file; pipeline_registry composes it."""

from payments_ml.pipelines.daily_ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
