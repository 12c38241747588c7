"""The one place that connects to Ray: a Kedro hook configured by ``conf/<env>/ray.yml``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from payments_ml.structured_logging import drop_messages, run_log_handler

logger = logging.getLogger(__name__)

# Whether this process started its Ray cluster (it ends with the run) or joined one.
_state = {"started_locally": False}

# ray.init arguments that only make sense when this process starts the cluster.
_LOCAL_ONLY = (
    "num_cpus",
    "object_store_memory",
    "include_dashboard",
    "dashboard_host",
    "dashboard_port",
)


def connect_ray(config: dict[str, Any]) -> bool:
    """Start a local Ray cluster or join an existing one, as ``config`` says.

    Args:
        config: The ``ray`` section of ray.yml. ``address: null`` starts a local cluster
            with ``num_cpus``/``object_store_memory``/dashboard settings; any other
            address (``auto``, ``ray://host:10001``, ``host:6379``) joins that cluster.

    Returns:
        True when this call started the Ray session (and so should shut it down).

    Raises:
        ConnectionError: When the configured cluster cannot be reached.
    """
    import ray  # noqa: PLC0415  (keep `kedro --help` and non-Ray commands fast)

    if ray.is_initialized():
        logger.info("Reusing the Ray session already open in this process")
        return False
    address = config.get("address")
    kwargs = _init_arguments(config)
    try:
        context = ray.init(**kwargs)
    except ValueError as err:  # a local start whose dashboard port is taken
        if kwargs["address"] != "local":
            raise
        ray.shutdown()  # what it started before failing (GCS, raylet) goes too
        raise ConnectionError(
            f"Could not start a local Ray cluster: {err}. Another Ray cluster probably runs "
            "on this machine (`make run` leaves one up): join it with "
            "RAY_ADDRESS=127.0.0.1:6379, stop it with `make stop`, or set "
            "ray.dashboard_port in conf/local/ray.yml."
        ) from err
    except (ConnectionError, RuntimeError) as err:
        raise ConnectionError(
            f"Could not connect to the Ray cluster at {address!r}: {err}. Start one with "
            "`ray start --head`, check RAY_ADDRESS, or use the default environment "
            "(address: null) to start a local cluster."
        ) from err
    _state["started_locally"] = kwargs["address"] == "local"
    configure_ray_data(config.get("data") or {})
    resources = ray.cluster_resources()
    logger.info(
        "Ray %s: %s CPU(s) on %d node(s); dashboard %s",
        "started locally" if kwargs["address"] == "local" else f"joined at {address}",
        int(resources.get("CPU", 0)),
        len([n for n in ray.nodes() if n.get("Alive")]),
        f"http://{context.dashboard_url}" if context.dashboard_url else "off",
    )
    return True


def _init_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """ray.init's arguments from ray.yml's ``ray`` section."""
    address = config.get("address")
    # The quiet console (conf/logging.yml) shows no INFO of Ray's and no worker output
    # (Serve's controller banner, ...): those stay in Ray's logs (dashboard -> Logs).
    quiet = run_log_handler() is not None
    log_to_driver = config.get("log_to_driver", "auto")
    kwargs: dict[str, Any] = {
        "namespace": config.get("namespace"),
        "log_to_driver": not quiet if log_to_driver == "auto" else bool(log_to_driver),
        "runtime_env": config.get("runtime_env"),
        "logging_level": logging.WARNING if quiet else None,
    }
    if address in (None, "", "local"):
        kwargs["address"] = "local"
        kwargs.update({k: config.get(k) for k in _LOCAL_ONLY})
    else:
        kwargs["address"] = address
    return {k: v for k, v in kwargs.items() if v is not None}


def cluster_outlives_run() -> bool:
    """True when the Ray cluster was joined, not started by this process (it stays up)."""
    return not _state["started_locally"]


def configure_ray_data(settings: dict[str, Any]) -> None:
    """Apply ray.yml's ``data`` settings to this process's Ray Data context
    (``enable_progress_bars: auto``: on a terminal only, not in a pipe or a log)."""
    import ray  # noqa: PLC0415

    data_context = ray.data.DataContext.get_current()
    for key, value in settings.items():
        if not hasattr(data_context, key):
            raise ValueError(f"ray.data settings in ray.yml: unknown DataContext field {key!r}")
        auto = key == "enable_progress_bars" and value == "auto"
        setattr(data_context, key, sys.stderr.isatty() if auto else value)
        if auto and not data_context.enable_progress_bars:  # off on purpose: no advice
            drop_messages(
                logging.getLogger("ray.data._internal.progress"), "Progress bars disabled"
            )


class RayHook:
    """Opens one Ray session per ``kedro run`` and closes it, also when a node fails."""

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._owns_session = False

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        try:
            self._config = dict(context.config_loader["ray"].get("ray") or {})
        except MissingConfigException:
            logger.info("No ray.yml in this environment: starting a default local Ray cluster")
            self._config = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._owns_session = connect_ray(self._config)

    @hook_impl
    def before_node_run(self) -> None:
        # The last node's tasks have just finished: let Ray's resource view catch up before
        # this node's first Ray Data execution (a stale view warns "will hang").
        import ray  # noqa: PLC0415

        from payments_ml.datasets.ray_dataset import settle_cpu_view  # noqa: PLC0415

        if ray.is_initialized():
            settle_cpu_view()

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._shutdown()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if not self._owns_session:
            return
        import ray  # noqa: PLC0415

        ray.shutdown()
        self._owns_session = False
        logger.info("Ray session closed")
