"""Feast feature services: the features one model version reads."""

from feast import FeatureService, FeatureView


def fraud_model_v1(customer_fv: FeatureView, merchant_fv: FeatureView) -> FeatureService:
    """Everything the fraud model reads from the store (request-time features come on top)."""
    return FeatureService(
        name="fraud_model_v1",
        features=[customer_fv, merchant_fv],
        description="Snapshot features of the fraud model, version 1.",
        tags={"owner": "payments-ml"},
    )
