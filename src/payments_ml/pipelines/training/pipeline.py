"""training: split -> Ray Tune search -> refit + baseline -> evaluation -> MLflow registry."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.training import nodes

# What the nodes after the split read besides their rows: its windows and the parameters.
SPLIT_AND_PARAMS = ["training_split", "params:training"]


def create_pipeline(**kwargs) -> Pipeline:
    """The training stage: `kedro run --pipelines training`."""
    return Pipeline(
        [
            Node(
                func=nodes.split_transactions,
                inputs=["training_set@pandas", "transaction_labels", "params:training"],
                outputs=["train_rows", "valid_rows", "test_rows", "training_split"],
                name="split_transactions_node",
            ),
            Node(
                func=nodes.tune_hyperparameters,
                inputs=["train_rows", "valid_rows", "params:training"],
                outputs="best_hyperparameters",
                name="tune_hyperparameters_node",
            ),
            Node(
                func=nodes.train_model,
                inputs=["train_rows", "valid_rows", "best_hyperparameters", *SPLIT_AND_PARAMS],
                outputs="fraud_model",
                name="train_model_node",
            ),
            Node(
                func=nodes.train_baseline,
                inputs=["train_rows", "params:training"],
                outputs="baseline_model",
                name="train_baseline_node",
            ),
            Node(
                func=nodes.evaluate_models,
                inputs=["fraud_model", "baseline_model", "test_rows", *SPLIT_AND_PARAMS],
                outputs=["training_metrics", "evaluation_report"],
                name="evaluate_models_node",
            ),
            Node(
                func=nodes.plot_evaluation,
                inputs=["fraud_model", "baseline_model", "test_rows"],
                outputs=[
                    "pr_curve_plot",
                    "feature_importance_plot",
                    "calibration_plot",
                    "score_distribution_plot",
                ],
                name="plot_evaluation_node",
            ),
            Node(
                func=nodes.register_model,
                inputs=["fraud_model", "test_rows", "evaluation_report", "params:training"],
                outputs="model_promotion",
                name="register_model_node",
            ),
        ]
    )
