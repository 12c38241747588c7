"""labels: the reports that arrived, resolved into one label per transaction."""

from payments_ml.pipelines.labels.pipeline import create_pipeline

__all__ = ["create_pipeline"]
