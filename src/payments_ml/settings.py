"""Kedro project settings: hooks and configuration loading."""

from pathlib import Path

from kedro.utils import find_kedro_project
from omegaconf.resolvers import oc

from payments_ml.config import ParametersHook
from payments_ml.hooks import RayHook
from payments_ml.logging_hooks import LoggingHook

# kedro-mlflow's hook registers itself (entry point).
HOOKS = (RayHook(), LoggingHook(), ParametersHook())


def _project_path() -> str:
    """The project root, for paths that must be absolute (MLflow stores)."""
    return (find_kedro_project(Path.cwd()) or Path.cwd()).as_posix()


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "ray": ["ray*", "ray*/**"],
        # conf/<env>/logging.yml, applied by LoggingHook (conf/cluster: JSON lines).
        "logging": ["logging*"],
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],  # kedro-mlflow's own pattern
        # feast.yml is read by the features nodes as `params:feast`.
        "parameters": ["parameters*", "parameters*/**", "**/parameters*", "feast*", "feast*/**"],
    },
    # An environment overrides single keys (conf/cluster/feast.yml sets only the online
    # store), not whole top-level sections.
    "merge_strategy": {"parameters": "soft", "ray": "soft", "mlflow": "soft"},
    # ${oc.env:RAY_ADDRESS} in conf/cluster: addresses come from the environment;
    # ${project_path:} in mlflow.yml: the SQLite store and artifacts under data/.
    "custom_resolvers": {"oc.env": oc.env, "project_path": _project_path},
}
