"""serving: the champion from the MLflow registry -> Ray Serve on the running cluster."""

from kedro.pipeline import Node, Pipeline

from payments_ml.pipelines.serving import nodes


def create_pipeline(**kwargs) -> Pipeline:
    """The serving stage: `kedro run --pipelines serving`."""
    return Pipeline(
        [
            Node(
                func=nodes.deploy_scorer,
                inputs=["params:serving", "params:feast", "model_promotion"],
                outputs="serving_deployment",
                name="deploy_scorer_node",
            )
        ]
    )
