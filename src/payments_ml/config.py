"""The project's configuration read outside a Kedro run (tests, benchmarks, tools).

Kedro nodes get their parameters from the run; code that runs without one reads them
here, resolved as ``kedro run`` resolves them (globals, runtime parameters, the
environment's overrides), never as raw YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl


def config_loader(
    project_path: str | Path, env: str = "base", runtime_params: dict[str, Any] | None = None
) -> Any:
    """The project's Kedro configuration loader in ``env`` (``base``: conf/base and
    conf/local), with the settings ``kedro run`` uses."""
    from kedro.config import OmegaConfigLoader  # noqa: PLC0415

    from payments_ml.settings import CONFIG_LOADER_ARGS  # noqa: PLC0415

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
    """Raise ValueError when the label-delay parameters present in ``params`` differ."""
    found = label_delays(params)
    if len({float(v) for v in found.values()}) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in found.items())
        raise ValueError(
            f"the label delay differs between pipelines ({listed}); set it once with "
            "`--params label_delay_days=N` or label_delay_days in conf/<env>/globals.yml"
        )


class ParametersHook:
    """Checks, before anything runs, what no single pipeline can check on its own."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        check_label_delay(context.params)
