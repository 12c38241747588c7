"""data_gen pipeline wiring."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.data_gen import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Catalogues, then one Ray task per day: generate, check the contract, count."""
    return Pipeline(
        [
            Node(
                nodes.build_customers, "params:data_gen", "customers", name="build_customers_node"
            ),
            Node(
                nodes.build_cards,
                ["customers", "params:data_gen"],
                "cards",
                name="build_cards_node",
            ),
            Node(
                nodes.build_merchants, "params:data_gen", "merchants", name="build_merchants_node"
            ),
            Node(
                nodes.generate_transactions,
                ["customers", "cards", "merchants", "raw_transaction_files", "params:data_gen"],
                ["raw_transactions", "transactions_quarantine", "labels", "data_gen_summary"],
                name="generate_transactions_node",
            ),
        ]
    )
