"""Kedro project settings: hooks and configuration loading."""

from payments_ml.config import CONFIG_LOADER_ARGS, ParametersHook
from payments_ml.hooks import RayHook
from payments_ml.logging_hooks import LoggingHook, ProgressHook
from payments_ml.mlflow_plugins import defer_feast_headers
from payments_ml.structured_logging import filter_library_deprecations

filter_library_deprecations()  # before the libraries that raise them are loaded

# Before kedro-mlflow's hook imports MLflow's header registry: 4 s off every run's start.
defer_feast_headers()

from payments_ml.mlflow_hook import mlflow_hook  # noqa: E402 (after the deferral)

# kedro-mlflow's hook with its parameters written in batches (payments_ml/mlflow_hook.py)
# stands in for the one the plugin registers (its distribution name, as Kedro reads it).
# Hooks run last registered first: the parameters are checked before MLflow's store is
# opened or created.
HOOKS = (RayHook(), LoggingHook(), ProgressHook(), mlflow_hook, ParametersHook())
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")

__all__ = ["CONFIG_LOADER_ARGS", "DISABLE_HOOKS_FOR_PLUGINS", "HOOKS"]
