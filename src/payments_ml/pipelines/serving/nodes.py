"""Serving node: deploy the scorer on the Ray cluster and wait until it answers."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

logger = logging.getLogger(__name__)


def deploy_scorer(
    serving: dict[str, Any], feast: dict[str, Any], model_promotion: dict[str, Any]
) -> dict[str, Any]:
    """Deploy the champion as a Ray Serve application and return once /health is ok.

    The application outlives `kedro run`, so the run must have joined a running Ray
    cluster (``make run`` starts one; or ``ray start --head`` and ``RAY_ADDRESS``).
    ``model_promotion`` orders this node after the registration in a full run.
    """
    import mlflow  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    from payments_ml.config import absolute_path, feast_settings  # noqa: PLC0415
    from payments_ml.hooks import cluster_outlives_run  # noqa: PLC0415
    from payments_ml.logging_hooks import quiet_library_consoles  # noqa: PLC0415
    from payments_ml.serving.app import build_app  # noqa: PLC0415

    quiet_library_consoles()  # Serve set its own console handler up as it was imported

    if not cluster_outlives_run():
        raise RuntimeError(
            "the serving pipeline needs a Ray cluster that outlives this run, but this run "
            "started its own (RAY_ADDRESS is unset): use `make run` or `make serve`, or "
            "`ray start --head` then `RAY_ADDRESS=127.0.0.1:6379 kedro run --pipelines serving`"
        )
    tracking_uri = mlflow.get_tracking_uri()
    replicas = replica_count(serving["num_replicas"], serving["replica_cpus"], _cluster_cpus())
    app = build_app(
        {
            "tracking_uri": tracking_uri,
            "registry_uri": mlflow.get_registry_uri(),
            "model_uri": serving["model_uri"],
            "feast": feast_settings(feast),  # the replicas run in other folders
            "num_replicas": replicas,
            "replica_cpus": serving["replica_cpus"],
            "score_log": serving.get("score_log"),
            "alerts_path": absolute_path(serving.get("alerts_path")),
            "labels_path": absolute_path(serving.get("labels_path")),
            "settings": serving,
        }
    )
    serve.start(http_options={"host": serving["host"], "port": serving["port"]})
    serve.run(app, name=serving["app_name"], route_prefix="/", blocking=False)
    url = f"http://{serving['host']}:{serving['port']}"
    health = _wait_healthy(url, serving["ready_timeout_s"])
    logger.info(
        "Scorer up at %s (model %s, %d replica(s), online store %s); champion decision: %s",
        url,
        health["model_version"],
        replicas,
        health["online_store"]["type"],
        "promoted" if model_promotion.get("promoted") else "kept",
    )
    return {
        "url": url,
        "app_name": serving["app_name"],
        "tracking_uri": tracking_uri,
        "num_replicas": replicas,
        **health,
    }


def replica_count(num_replicas: int | str, replica_cpus: float, cluster_cpus: float) -> int:
    """``num_replicas``, or with ``auto``: 2 where the cluster has the CPUs for two (a
    crash of one then costs nothing but its requests in flight), else 1.

    Raises:
        ValueError: ``num_replicas`` is neither a positive integer nor ``auto``.
    """
    if num_replicas == "auto":
        return 2 if cluster_cpus >= 2 * replica_cpus and cluster_cpus >= 2 else 1  # noqa: PLR2004
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise ValueError(
            f"serving.num_replicas must be a positive integer or 'auto', got {num_replicas!r}"
        )
    return num_replicas


def _cluster_cpus() -> float:
    import ray  # noqa: PLC0415

    return float(ray.cluster_resources().get("CPU", 0))


def _wait_healthy(url: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                health = json.loads(answer.read())
            if health["status"] == "ok":
                return health
            last_error = f"degraded: {health['online_store']['error']}"
        except (urllib.error.URLError, OSError, ValueError) as error:
            last_error = str(error)
        time.sleep(1)
    raise TimeoutError(
        f"the scorer at {url} was not healthy within {timeout_s} s ({last_error}); see the "
        "Serve logs in the Ray dashboard (Serve tab)"
    )
