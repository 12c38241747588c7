"""The project's configuration and paths, for everything outside a Kedro node.

Kedro nodes get their parameters from the run. Code that runs without one (the scorer's
Serve application, the replay and Feast UI commands, tests, benchmarks) reads them here,
resolved as ``kedro run`` resolves them (globals, runtime parameters, the environment's
overrides), never as raw YAML. `absolute_path` is the one rule for turning a configured
path into one that another process (a Ray worker, a Serve replica) can open.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.utils import find_kedro_project
from omegaconf.resolvers import oc

from payments_ml.parameters import ParameterError, check_parameters

# The project whose configuration is being read, when it is not the working folder's
# (project_settings of another folder: the scorer, the replay, the orchestration CLI).
_READING: contextvars.ContextVar[Path | None] = contextvars.ContextVar("reading", default=None)


def _project_path() -> str:
    """The project root, for paths that must be absolute (MLflow stores)."""
    root = _READING.get() or find_kedro_project(Path.cwd()) or Path.cwd()
    return Path(root).as_posix()


# How Kedro reads conf/ (settings.py hands these to Kedro; config_loader uses the same).
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


def absolute_path(path: str | os.PathLike[str] | None, root: str | Path | None = None) -> Any:
    """``path`` as any process can open it, whatever its working directory.

    A relative path is anchored at ``root`` (default: the working directory, the project
    root under `kedro run`) and ``~`` is expanded; a ``file://`` URL becomes its local
    path (Feast's file registry reads file:// URLs as relative paths); other URLs
    (``s3://``, ``gs://``, ``redis://``) and None or "" are returned as they are.
    Nothing is created.
    """
    if path is None or str(path) == "":
        return path
    text = str(path)
    for local in ("file://", "local://"):
        text = text.removeprefix(local)
    if "://" in text:
        return text
    target = Path(text).expanduser()
    if not target.is_absolute():
        target = Path(root or Path.cwd()).expanduser() / target
    return target.resolve().as_posix()


def config_loader(
    project_path: str | Path, env: str = "base", runtime_params: dict[str, Any] | None = None
) -> Any:
    """The project's Kedro configuration loader in ``env`` (``base``: conf/base and
    conf/local), with the settings ``kedro run`` uses."""
    from kedro.config import OmegaConfigLoader  # noqa: PLC0415

    return OmegaConfigLoader(
        str(Path(project_path).resolve() / "conf"),
        env=None if env == "base" else env,
        runtime_params=runtime_params,
        **CONFIG_LOADER_ARGS,
    )


def load_parameters(
    project_path: str | Path, env: str = "base", runtime_params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every parameter of the project in ``env``, resolved."""
    return dict(config_loader(project_path, env, runtime_params)["parameters"])


def feast_settings(feast: dict[str, Any], root: str | Path | None = None) -> dict[str, Any]:
    """The ``feast`` parameters with every local path absolute (from ``root`` or the
    working directory): a Serve replica opens the store from another folder."""
    out = {**feast, "registry": absolute_path(feast["registry"], root)}
    out["sources"] = {name: absolute_path(p, root) for name, p in feast["sources"].items()}
    online = dict(feast["online_store"])
    if "path" in online:
        online["path"] = absolute_path(online["path"], root)
    out["online_store"] = online
    return out


def project_settings(project_path: str | Path, env: str = "base") -> dict[str, Any]:
    """What the scorer and the tools outside Kedro need from a project's configuration:
    the MLflow URIs, the Feast settings (paths absolute), the serving parameters, and the
    paths of the catalog's file datasets (``datasets``: name, without a transcoding
    suffix such as ``@pandas``, -> absolute path)."""
    root = Path(project_path).resolve()
    loader = config_loader(root, env)
    reading = _READING.set(root)  # ${project_path:} is this project, wherever we run
    try:
        parameters = loader["parameters"]
        server = loader["mlflow"]["server"]
        catalog = loader["catalog"]
    finally:
        _READING.reset(reading)
    serving = parameters.get("serving", {})
    return {
        "tracking_uri": server["mlflow_tracking_uri"],
        "registry_uri": server.get("mlflow_registry_uri") or server["mlflow_tracking_uri"],
        "feast": feast_settings(parameters["feast"], root),
        "score_log": serving.get("score_log"),
        "alerts_path": absolute_path(serving.get("alerts_path"), root),
        "labels_path": absolute_path(serving.get("labels_path"), root),
        "settings": serving,
        "datasets": {
            name.split("@")[0]: absolute_path(path, root)
            for name, path in catalog_paths(catalog).items()
        },
    }


def catalog_paths(catalog: dict[str, Any]) -> dict[str, str]:
    """Catalog name -> ``filepath`` as configured, for the datasets stored in files
    (wrapped ones such as MLflow's artifact datasets included; factories left out)."""
    paths = {}
    for name, entry in catalog.items():
        if not isinstance(entry, dict) or "{" in name:
            continue
        inner = entry.get("dataset") if isinstance(entry.get("dataset"), dict) else {}
        path = entry.get("filepath") or inner.get("filepath")
        if path:
            paths[name] = path
    return paths


# The parameters that take globals.yml's label_delay_days. They must agree: a training gap
# shorter than the delay the features assume would train on labels not known yet.
LABEL_DELAY_KEYS = (
    ("data_gen", "labels", "standard_delay_days"),
    ("ingest", "label_delay_days"),
    ("features", "label_delay_days"),
    ("training", "delay_days"),
)


def label_delays(params: dict[str, Any]) -> dict[str, Any]:
    """``{"features.label_delay_days": 7, ...}``: the label-delay keys ``params`` holds."""
    found = {}
    for path in LABEL_DELAY_KEYS:
        value: Any = params
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            found[".".join(path)] = value
    return found


def check_label_delay(params: dict[str, Any]) -> None:
    """Raise ParameterError when the label-delay parameters present in ``params`` differ."""
    found = label_delays(params)
    if len({float(v) for v in found.values()}) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in found.items())
        raise ParameterError(
            f"the label delay differs between pipelines ({listed}); set it once with "
            "`--params label_delay_days=N` or label_delay_days in conf/<env>/globals.yml"
        )


@dataclasses.dataclass(frozen=True)
class RunContext:
    """The `kedro run` in progress: what a node needs to start another run of the same
    project (the daily pipeline's training, when due)."""

    project_path: Path
    env: str | None
    runtime_params: dict[str, Any]


_RUN: list[RunContext] = []  # the run of this process (a Kedro session runs once)


def current_run() -> RunContext:
    """The `kedro run` in progress (set when its context is created).

    Raises:
        RuntimeError: Outside a `kedro run`.
    """
    if not _RUN:
        raise RuntimeError("no `kedro run` in progress in this process")
    return _RUN[-1]


class ParametersHook:
    """Checks, before anything runs, what no single pipeline can check on its own, and
    records the run (`current_run`)."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        runtime = dict(getattr(context.config_loader, "runtime_params", None) or {})
        _RUN[:] = [RunContext(Path(context.project_path), context.env, runtime)]
        params = context.params
        check_parameters(params)  # types and ranges, before any node reads or writes
        check_label_delay(params)
