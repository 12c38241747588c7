"""ingest pipeline wiring (not in the default run: it writes what data_gen writes; the
night on your own data, `daily_ingest`, runs it first)."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.ingest import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Check the mapping; the labels file (or none) onto the feed; map, validate and
    summarise the transactions on Ray; then the entity catalogues."""
    return Pipeline(
        [
            Node(nodes.plan_ingest, "params:ingest", "ingest_plan", name="plan_ingest_node"),
            # The feed first: whatever runs after raw_transactions (the labels stage) finds
            # the feed of these transactions, not the one an earlier run left.
            Node(
                nodes.ingest_labels,
                "ingest_plan",
                ["labels", "labels_file_quarantine", "ingest_labels_summary"],
                name="ingest_labels_node",
            ),
            Node(
                nodes.ingest_transactions,
                ["ingest_plan", "ingest_labels_summary"],
                [
                    "raw_transactions",
                    "transactions_quarantine",
                    "ingest_summary",
                    "ingest_entity_stats",
                ],
                name="ingest_transactions_node",
            ),
            # A night's ingest (ingest.run_date) merges its entities into the stored ones.
            Node(
                nodes.derive_catalogues,
                [
                    "ingest_entity_stats",
                    "ingest_plan",
                    "stored_customers",
                    "stored_cards",
                    "stored_merchants",
                ],
                ["customers", "cards", "merchants"],
                name="derive_catalogues_node",
            ),
        ]
    )
