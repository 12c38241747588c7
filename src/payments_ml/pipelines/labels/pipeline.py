"""labels pipeline wiring (the features stage runs it first: pipeline_registry)."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.labels import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """Every report of the labels feed, checked and resolved: one label per transaction."""
    return Pipeline(
        [
            Node(
                nodes.resolve_labels,
                ["raw_transactions", "label_reports", "raw_transaction_files"],
                ["transaction_labels", "labels_quarantine", "labels_summary"],
                name="resolve_labels_node",
            )
        ]
    )
