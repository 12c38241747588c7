"""The daily pipeline's own node; pipeline_registry puts the stages before it (DAILY)."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.daily import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """After the night's data, labels, features and monitoring: training, when it is due."""
    return Pipeline(
        [
            Node(
                nodes.train_when_due,
                ["params:training", "params:run_date", "online_materialization", "drift_report"],
                "training_decision",
                name="train_when_due_node",
            )
        ]
    )
