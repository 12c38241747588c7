"""Kedro project settings: hooks and configuration loading."""

from payments_ml.config import CONFIG_LOADER_ARGS, ParametersHook
from payments_ml.hooks import RayHook
from payments_ml.logging_hooks import LoggingHook
from payments_ml.mlflow_plugins import defer_feast_headers

# Before kedro-mlflow's hook imports MLflow's header registry: 4 s off every run's start.
defer_feast_headers()

# kedro-mlflow's hook registers itself (entry point).
HOOKS = (RayHook(), LoggingHook(), ParametersHook())

__all__ = ["CONFIG_LOADER_ARGS", "HOOKS"]
