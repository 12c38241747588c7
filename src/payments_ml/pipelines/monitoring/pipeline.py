"""monitoring: quality of what arrived, drift of features and scores -> alerts."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.monitoring import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """The monitoring stage: `kedro run --pipelines monitoring`."""
    return Pipeline(
        [
            Node(
                func=nodes.measure_data_quality,
                inputs={
                    "raw_transactions": "raw_transactions",  # orders the node after writers
                    "transactions_quarantine": "transactions_quarantine",
                    "monitoring_state": "monitoring_state",
                    "transaction_labels": "transaction_labels",
                    "params": "params:monitoring",
                    "raw_files": "raw_transaction_files",  # what is read, in tasks
                    "quarantine_files": "quarantine_transaction_files",
                },
                outputs=["data_quality", "monitoring_state_updated"],
                name="measure_data_quality_node",
            ),
            Node(
                func=nodes.measure_drift,
                inputs={
                    "training_set": "training_set@pandas",
                    "scored_transactions": "scored_transactions",
                    "training_split": "training_split",
                    "params": "params:monitoring",
                    "model_name": "params:training.registry.model_name",
                    "serving_deployment": "serving_deployment",  # after serving, in `kedro run`
                },
                outputs="drift",
                name="measure_drift_node",
            ),
            Node(
                func=nodes.raise_alerts,
                inputs=["data_quality", "drift", "params:monitoring"],
                outputs=["alerts", "drift_report", "monitoring_metrics"],
                name="raise_alerts_node",
            ),
            Node(
                func=nodes.report_review_outcome,
                inputs=[
                    "scored_transactions",
                    "label_reports",
                    "params:monitoring.review_days",
                    "serving_deployment",  # after serving, in `kedro run`
                ],
                outputs="review_outcome",
                name="report_review_outcome_node",
            ),
        ]
    )
