"""features pipeline wiring."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.features import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Shuffle by customer once; merchant days, snapshots and training rows; then Feast.

    ``--params features.run_date=YYYY-MM-DD`` builds that night only (nodes.py)."""
    return Pipeline(
        [
            Node(
                nodes.partition_by_customer,
                [
                    "raw_transactions",
                    "raw_transaction_files",
                    "stored_merchant_days",
                    "params:features",
                ],
                "transactions_by_customer",
                name="partition_by_customer_node",
            ),
            Node(
                nodes.aggregate_merchant_days,
                [
                    "transactions_by_customer",
                    "stored_merchant_days",
                    "transaction_labels",
                    "params:features",
                ],
                "merchant_days",
                name="aggregate_merchant_days_node",
            ),
            Node(
                nodes.build_merchant_snapshots,
                ["merchant_days", "params:features"],
                "merchant_snapshots",
                name="build_merchant_snapshots_node",
            ),
            Node(
                nodes.build_customer_features,
                ["transactions_by_customer", "merchant_days", "params:features"],
                ["training_set@ray", "customer_snapshots"],
                name="build_customer_features_node",
            ),
            Node(
                nodes.apply_feature_store,
                ["params:feast", "customer_snapshots", "merchant_snapshots"],
                "feature_store_definitions",
                name="apply_feature_store_node",
            ),
            Node(
                nodes.materialize_online,
                [
                    "params:feast",
                    "customer_snapshots",
                    "merchant_snapshots",
                    "feature_store_definitions",
                ],
                "online_materialization",
                name="materialize_online_node",
            ),
        ]
    )
