"""Project pipelines: each stage runs alone with `kedro run --pipelines <name>`."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Stages in run order; `kedro run` runs those that exist, in this order. `ingest` is
# not one: it writes the same raw_transactions as data_gen, from a file of yours.
STAGES = ("data_gen", "features", "training", "serving", "monitoring")


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline package under payments_ml.pipelines and the default run."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in STAGES if name in pipelines), Pipeline([])
    )
    return pipelines
