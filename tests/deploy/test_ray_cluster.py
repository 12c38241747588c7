"""ray_cluster.yaml against the cluster launcher's own schema and checks, offline.

`ray up` loads a config with ``prepare_config`` (merges the provider's defaults) and
``validate_config`` (the JSON schema shipped in Ray, ray/autoscaler/ray-schema.json, plus
node-type checks); both run here without touching AWS.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import PROJECT_ROOT

HA_PROXY_ENV = ("RAY_SERVE_ENABLE_HA_PROXY=1", "RAY_SERVE_THROUGHPUT_OPTIMIZED=1")


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "ray_cluster.yaml").read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_config_passes_the_launchers_schema(config, schema):
    jsonschema.validate(config, schema)


def test_config_passes_the_launchers_own_loading(config):
    """What `ray up` does before it talks to AWS: merge the defaults, then validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] == "ray.head.default"
    assert prepared["provider"]["type"] == "aws"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("available_node_types", "ray.worker.spot", "resources"), {"CPU": "8"}, "not of type"),
        (("available_node_types", "ray.worker.spot", "min_worker"), 1, "Additional properties"),
        (("docker", "imgae"), "rayproject/ray", "Additional properties"),
        (("setup_commands",), "pip install .", "not of type"),
    ],
)
def test_schema_rejects_a_broken_copy(config, schema, path, value, message):
    """The schema is strict enough to catch typos and wrong types in this file."""
    broken = copy.deepcopy(config)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.validate(broken, schema)


def test_sum_of_min_workers_fits_max_workers(config):
    broken = copy.deepcopy(config)
    broken["max_workers"] = 0
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(prepare_config(broken))


def test_image_carries_the_projects_ray_and_python(config):
    image = config["docker"]["image"]
    match = re.fullmatch(r"rayproject/ray:(?P<ray>[\d.]+)-py(?P<py>\d+)-cpu", image)
    assert match, image
    assert match["ray"] == ray.__version__, f"cluster Ray {match['ray']} != project Ray"
    assert match["py"] == f"{sys.version_info.major}{sys.version_info.minor}"


def test_setup_installs_this_package_pinned_to_the_images_ray(config):
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "~/payments-ml" in setup
    assert "ray.__version__" in setup, "the install must not replace the image's Ray"
    assert config["file_mounts"]["~/payments-ml"] == "."
    assert ".gitignore" in config["rsync_filter"], "data/, .venv and conf/local must stay home"


def test_file_mounts_come_from_git_ignored_places(config):
    """Settings and the token are copied to the nodes but never committed."""
    assert config["file_mounts"]["~/payments-ml.env"].startswith("conf/local/")
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    gitignore = (PROJECT_ROOT / ".gitignore").read_text()
    assert "conf/local/**" in gitignore


@pytest.mark.parametrize("node", ["head", "worker"])
def test_every_node_starts_ray_with_the_same_environment(config, node):
    start = " ".join(config[f"{node}_start_ray_commands"])
    assert ". ~/payments-ml.env" in start and "set -a" in start
    assert "RAY_AUTH_MODE=token" in start, "a cluster reachable on the network needs a token"
    for setting in HA_PROXY_ENV:  # proxies run on every node (Serve's default EveryNode)
        assert setting in start
    assert "ray start" in start


def test_workers_join_the_heads_port(config):
    head = " ".join(config["head_start_ray_commands"])
    worker = " ".join(config["worker_start_ray_commands"])
    port = re.search(r"--head --port=(\d+)", head)[1]
    assert f"--address=$RAY_HEAD_IP:{port}" in worker


def test_head_runs_no_tasks_and_spot_is_not_the_only_capacity(config):
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    on_demand = [
        t
        for name, t in types.items()
        if name != config["head_node_type"]
        and "InstanceMarketOptions" not in t["node_config"]
        and t.get("min_workers", 0) >= 1
    ]
    assert on_demand, "the scorer needs an always-on, on-demand worker"


def test_shared_storage_is_the_projects_data_folder_in_every_container(config):
    """data/ (datasets, the Feast registry) must be the same files on every node."""
    mounts = [o.split()[1] for o in config["docker"]["run_options"] if o.startswith("--volume")]
    targets = {mount.split(":")[1] for mount in mounts}
    project = "/home/ray/" + next(
        remote.removeprefix("~/") for remote, local in config["file_mounts"].items() if local == "."
    )
    assert f"{project}/data" in targets
    assert any("mkdir -p /mnt/payments-ml" in c for c in config["initialization_commands"])
