"""serving: deploy the champion model as the Ray Serve scorer."""

from payments_ml.pipelines.serving.pipeline import create_pipeline

__all__ = ["create_pipeline"]
