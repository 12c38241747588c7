"""training: LightGBM tuned by Ray Tune, evaluated on a time split, registered in MLflow."""

from payments_ml.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
