"""What `kedro run` runs, and in which order."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def pipelines():
    from kedro.framework.project import configure_project  # noqa: PLC0415

    from payments_ml.pipeline_registry import register_pipelines  # noqa: PLC0415

    configure_project("payments_ml", preserve_logging=True)  # the test session keeps its own
    return register_pipelines()


def _stage(node_name: str, pipelines) -> str:
    for stage in ("data_gen", "labels", "features", "training", "serving", "monitoring"):
        names = {n.name for n in pipelines[stage].nodes}
        if node_name in names:
            return stage
    return "?"


def test_a_whole_run_goes_through_the_stages_in_order_monitoring_last(pipelines):
    """Kedro orders nodes by their inputs: the drift check takes the serving stage's
    deployment, so it judges the scorer that run deployed (and what it logged), as does
    the review outcome, and the alerts (or the review outcome) come last. (The day table
    reads only the raw data and may come earlier.)"""
    nodes = [n.name for n in pipelines["__default__"].nodes]
    order = [_stage(name, pipelines) for name in nodes]
    last = {stage: max(i for i, s in enumerate(order) if s == stage) for stage in set(order)}
    assert order.index("serving") > last["training"] > last["features"] > last["data_gen"]
    assert nodes.index("measure_drift_node") > last["serving"]
    assert nodes.index("report_review_outcome_node") > last["serving"]
    assert nodes[-1] in {"raise_alerts_node", "report_review_outcome_node"}


def test_the_pipelines_are_the_packages(pipelines):
    from payments_ml.pipeline_registry import pipeline_names  # noqa: PLC0415

    assert set(pipelines) == {"__default__", *pipeline_names()}
