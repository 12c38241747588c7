"""Project pipelines: each stage runs alone with `kedro run --pipelines <name>`."""

import importlib
import importlib.resources
import re

import click
from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Stages in run order; `kedro run` runs those that exist, in this order. `ingest` is
# not one: it writes the same raw_transactions as data_gen, from a file of yours.
STAGES = ("data_gen", "features", "training", "serving", "monitoring")
# Pipelines made of others, in order. The features stage first resolves the labels that
# arrived (its merchant windows count them; `--pipelines labels` runs that step alone).
# The daily pipeline is one night: `kedro run --pipelines daily --params run_date=D`;
# daily_ingest the same night on your own file of that day in place of data_gen:
# `kedro run --pipelines daily_ingest --params "run_date=D,ingest.path=/data/D.csv"`.
COMPOSED = {
    "features": ("labels", "features"),
    "daily": ("data_gen", "labels", "features", "monitoring", "daily"),
    "daily_ingest": ("ingest", "labels", "features", "monitoring", "daily"),
}


def register_pipelines() -> dict[str, Pipeline]:
    """Register every pipeline package under payments_ml.pipelines and the default run."""
    try:
        pipelines = find_pipelines(raise_errors=True)
    except ImportError as error:  # Kedro's error for a name with no package: 200 lines
        unknown = re.search(r"'payments_ml\.pipelines\.(\w+)'", str(error))
        if error.__cause__ is not None or unknown is None:
            raise  # a pipeline package that fails to import: its own traceback
        raise click.ClickException(
            f"There is no pipeline '{unknown[1]}'. Pipelines: {', '.join(pipeline_names())}."
        ) from None
    own = {name: pipelines.get(name) for name in COMPOSED}
    for name, parts in COMPOSED.items():
        if name in pipelines:  # Kedro finds only the pipelines a run asks for
            pipelines[name] = sum((_own(part, own) for part in parts), Pipeline([]))
    pipelines["__default__"] = sum(
        (pipelines[name] for name in STAGES if name in pipelines), Pipeline([])
    )
    return pipelines


def pipeline_names() -> list[str]:
    """The pipelines `kedro run --pipelines` takes (the packages under pipelines/)."""
    found = importlib.resources.files("payments_ml.pipelines").iterdir()
    return sorted(p.name for p in found if p.is_dir() and (p / "__init__.py").is_file())


def _own(name: str, own: dict[str, Pipeline | None]) -> Pipeline:
    """The pipeline of the package ``name`` alone (not composed)."""
    if own.get(name) is not None:
        return own[name]
    return importlib.import_module(f"payments_ml.pipelines.{name}").create_pipeline()
