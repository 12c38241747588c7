"""Kedro project settings: hooks and configuration loading."""

from omegaconf.resolvers import oc

from payments_ml.hooks import RayHook

HOOKS = (RayHook(),)

# kedro-mlflow starts a run for every `kedro run`; the training pipeline enables it.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "ray": ["ray*", "ray*/**"],
        # feast.yml is read by the features nodes as `params:feast`.
        "parameters": ["parameters*", "parameters*/**", "**/parameters*", "feast*", "feast*/**"],
    },
    # ${oc.env:RAY_ADDRESS} in conf/cluster: addresses come from the environment.
    "custom_resolvers": {"oc.env": oc.env},
}
