"""Checks of a Serve config embedded in a deployment file (KubeRay's RayService, Compose)
against Ray's own schema and deploy/serve_config.yaml."""

from __future__ import annotations

from typing import Any

import yaml
from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

from tests.conftest import PROJECT_ROOT


def check_strict_serve_config(config: dict[str, Any]) -> None:
    """Valid for Ray Serve, and no unknown key (Serve's schema ignores a typo silently)."""
    ServeDeploySchema.model_validate(config)
    assert set(config) <= set(ServeDeploySchema.model_fields)
    for app in config["applications"]:
        assert set(app) <= set(ServeApplicationSchema.model_fields), app["name"]
        for deployment in app["deployments"]:
            assert set(deployment) <= set(DeploymentSchema.model_fields), deployment["name"]


def check_same_application(config: dict[str, Any]) -> dict[str, Any]:
    """``config``'s one application is deploy/serve_config.yaml's, in the cluster
    environment; returns it."""
    local = yaml.safe_load((PROJECT_ROOT / "deploy/serve_config.yaml").read_text())
    (app,) = config["applications"]
    (local_app,) = local["applications"]
    for key in ("name", "route_prefix", "import_path"):
        assert app[key] == local_app[key], key
    assert set(app["args"]) == set(local_app["args"])
    assert app["args"]["model_uri"] == local_app["args"]["model_uri"]
    assert app["args"]["env"] == "cluster", "the scorer reads conf/cluster"
    assert [d["name"] for d in app["deployments"]] == [d["name"] for d in local_app["deployments"]]
    return app
