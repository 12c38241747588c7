"""Project pipelines: each stage runs alone with `kedro run --pipelines <name>`."""

import importlib

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Stages in run order; `kedro run` runs those that exist, in this order. `ingest` is
# not one: it writes the same raw_transactions as data_gen, from a file of yours.
STAGES = ("data_gen", "features", "training", "serving", "monitoring")
# The features stage first resolves the labels that arrived (its merchant windows count
# them); `--pipelines labels` runs that step alone.
PART_OF = {"labels": "features"}


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline package under payments_ml.pipelines and the default run."""
    pipelines = find_pipelines(raise_errors=True)
    for part, stage in PART_OF.items():
        if stage in pipelines:  # Kedro finds only the pipelines a run asks for
            part_of = importlib.import_module(f"payments_ml.pipelines.{part}")
            pipelines[stage] = part_of.create_pipeline() + pipelines[stage]
    pipelines["__default__"] = sum(
        (pipelines[name] for name in STAGES if name in pipelines), Pipeline([])
    )
    return pipelines
