"""data_gen: entity catalogues and synthetic transactions, one Ray task per day."""

from payments_ml.pipelines.data_gen.pipeline import create_pipeline

__all__ = ["create_pipeline"]
