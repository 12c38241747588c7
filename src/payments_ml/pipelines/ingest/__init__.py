"""ingest: bring your own data; an external transactions file mapped onto the contract."""

from payments_ml.pipelines.ingest.pipeline import create_pipeline

__all__ = ["create_pipeline"]
