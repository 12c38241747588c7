"""data_gen pipeline wiring."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.data_gen import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Catalogues -> transactions (Ray, one task per day) -> contract split."""
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
                ["customers", "cards", "merchants", "params:data_gen"],
                "generated_transactions",
                name="generate_transactions_node",
            ),
            Node(
                nodes.validate_transactions,
                "generated_transactions",
                ["raw_transactions", "transactions_quarantine", "data_gen_summary"],
                name="validate_transactions_node",
            ),
        ]
    )
