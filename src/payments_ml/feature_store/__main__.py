"""Feast's view of the project: ``yaml`` writes ``feature_store.yaml``, ``ui`` serves the UI.

The project's Feast settings come from Kedro's ``conf/<env>/feast.yml``.
``python -m payments_ml.feature_store yaml [--env cluster]`` writes them as the
``feature_store.yaml`` at the project root that Feast's own CLI reads (``feast
feature-views list``, ``feast ui --host 127.0.0.1``, ``feast materialize-incremental``,
``feast apply``; see `payments_ml.feature_store.repo`); the features pipeline rewrites it
on every run. ``python -m payments_ml.feature_store ui`` builds the store ``kedro run``
uses and serves Feast's UI over it on 127.0.0.1 (feature views, entities, the
``fraud_model_v1`` service, data sources).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)


def serve_ui(project_path: Path, env: str, host: str, port: int) -> None:
    """Serve the Feast UI of the project at ``project_path`` until interrupted.

    Args:
        project_path: The Kedro project whose configuration names the registry.
        env: Kedro configuration environment (``base`` reads conf/base and conf/local).
        host: Interface to listen on.
        port: TCP port to listen on.

    Raises:
        SystemExit: The registry does not exist yet; the message says how to create it.
    """
    from payments_ml.config import project_settings  # noqa: PLC0415

    feast = project_settings(str(project_path), env)["feast"]
    registry = feast["registry"]
    if "://" not in registry and not Path(registry).exists():
        raise SystemExit(
            f"no Feast registry at {registry}: create it with "
            "`kedro run --pipelines features` (or `make run`) in the project first"
        )
    from payments_ml.feature_store.store import open_store  # noqa: PLC0415 (Feast is slow)

    store = open_store(feast)
    logger.info(
        "Feast UI of project %s (registry %s) on http://%s:%d  (Ctrl+C stops it)",
        feast["project"],
        registry,
        host,
        port,
    )
    store.serve_ui(host=host, port=port)


def write_yaml(project_path: Path, env: str) -> Path:
    """Write the project's ``feature_store.yaml`` from ``conf/<env>/feast.yml``.

    Args:
        project_path: The Kedro project; the file goes at its root.
        env: Kedro configuration environment (``base`` reads conf/base and conf/local).

    Returns:
        The file written.

    Raises:
        SystemExit: The configuration names an unset environment variable.
    """
    from omegaconf.errors import InterpolationResolutionError  # noqa: PLC0415

    from payments_ml.config import load_parameters  # noqa: PLC0415
    from payments_ml.feature_store.repo import write_feature_store_yaml  # noqa: PLC0415

    try:
        feast = load_parameters(project_path, env)["feast"]
    except InterpolationResolutionError as error:  # an unset variable: REDIS_URL, say
        raise SystemExit(
            f"cannot read the Feast settings of environment {env!r}: "
            f"{str(error).splitlines()[0]}; set it and run this again"
        ) from error
    path = write_feature_store_yaml(feast, env, project_path)
    logger.info(
        "Wrote %s (Kedro environment %s): run `feast feature-views list` or "
        "`feast ui --host 127.0.0.1` in %s",
        path,
        env,
        project_path,
    )
    return path


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(
        prog="python -m payments_ml.feature_store", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ui = commands.add_parser("ui", help="serve the Feast UI over the project's registry")
    generate = commands.add_parser(
        "yaml", help="write feature_store.yaml (for Feast's CLI) from conf/<env>/feast.yml"
    )
    for command in (ui, generate):
        command.add_argument(
            "--project-path", type=Path, default=Path.cwd(), help="project root (default: .)"
        )
        command.add_argument(
            "--env", default="base", help="Kedro environment: base (default, with local) or cluster"
        )
    ui.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8888, help="port (default: 8888)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "yaml":
        write_yaml(args.project_path.resolve(), args.env)
    else:
        serve_ui(args.project_path.resolve(), args.env, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
