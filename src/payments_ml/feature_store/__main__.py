"""``python -m payments_ml.feature_store ui``: the Feast UI over this project's registry.

Feast's own ``feast ui`` reads a ``feature_store.yaml``; this project has none, because
its Feast settings come from Kedro's ``conf/<env>/feast.yml`` (``store.repo_config``).
This command builds the same store ``kedro run`` uses and serves Feast's UI over it
(feature views, entities, the ``fraud_model_v1`` service, data sources).
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


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(
        prog="python -m payments_ml.feature_store", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    ui = commands.add_parser("ui", help="serve the Feast UI over the project's registry")
    ui.add_argument(
        "--project-path", type=Path, default=Path.cwd(), help="project root (default: .)"
    )
    ui.add_argument(
        "--env", default="base", help="Kedro environment: base (default, with local) or cluster"
    )
    ui.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8888, help="port (default: 8888)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    serve_ui(args.project_path.resolve(), args.env, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
