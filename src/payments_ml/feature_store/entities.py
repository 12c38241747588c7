"""Feast entities: who the features describe."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.INT64,
    description="A card holder; holds one to three cards.",
    tags={"owner": "payments-ml"},
)

merchant = Entity(
    name="merchant",
    join_keys=["merchant_id"],
    value_type=ValueType.INT64,
    description="A store or online shop accepting cards.",
    tags={"owner": "payments-ml"},
)
