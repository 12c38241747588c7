"""The night on your own data has no node of its own; pipeline_registry.COMPOSED builds it.

The package exists so that Kedro, which imports only the pipeline packages a run names,
finds `kedro run --pipelines daily_ingest`.
"""

from kedro.pipeline import Pipeline


def create_pipeline(**kwargs) -> Pipeline:
    """No node: ingest, labels, features, monitoring and daily's are put together by
    the registry (``COMPOSED["daily_ingest"]``)."""
    return Pipeline([])
