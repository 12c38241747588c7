"""docker-compose.yml (the cluster environment on one machine), checked without a Docker engine.

- the Compose Specification's JSON schema: tests/deploy/schemas/compose-spec.json, vendored
  from compose-spec/compose-spec (schema/compose-spec.json at commit
  00655e2222608fa6eaecdf12ac5195889ca2244a, noted in its ``$comment``), the schema
  ``docker compose`` v2 validates files with;
- what the schema cannot see: references between services, volumes and configs, published
  ports on 127.0.0.1 only, no secret written in the file, pinned images, the environment
  conf/cluster reads on every Ray node, the scorer's Serve config against
  deploy/serve_config.yaml and its port;
- ``docker compose config`` when the Compose v2 client is installed (it needs no engine).
"""

from __future__ import annotations

import copy
import graphlib
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import PROJECT_ROOT
from tests.deploy.serve_configs import check_same_application, check_strict_serve_config

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "schemas/compose-spec.json"
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
PROJECT_IMAGE = f"payments-ml:{PYPROJECT['project']['version']}"
# Environment keys whose values are credentials: they come from the environment only.
SECRET_KEY = re.compile(r"(PASSWORD|TOKEN|SECRET|_AUTH)$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")
DUMMY_SECRETS = {
    "RAY_AUTH_TOKEN": "0" * 64,
    "POSTGRES_PASSWORD": "1" * 48,
    "REDIS_PASSWORD": "2" * 48,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


@pytest.fixture(scope="module")
def validator(schema) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(schema)


def _schema_errors(validator: jsonschema.Draft7Validator, doc: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def _set(doc: dict, path: str, value: Any) -> dict:
    broken = copy.deepcopy(doc)
    *parents, last = path.split("/")
    target = broken
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return broken


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string value of the file, with where it is (anchors already expanded)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}/{i}")
    elif isinstance(node, str):
        yield path, node


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _flag(command: list[str], name: str) -> str:
    """The value of ``--name=value`` (or ``--name value``) in a command."""
    for i, arg in enumerate(command):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    raise AssertionError(f"{name} is missing from {command}")


def _ray_nodes(compose: dict) -> dict[str, dict]:
    """The services that run Ray nodes: where the project's code runs (drivers, tasks,
    Serve replicas)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if _command(service)[:2] == ["ray", "start"]
    }


def _ray_head(compose: dict) -> tuple[str, dict]:
    (head,) = [(n, s) for n, s in _ray_nodes(compose).items() if "--head" in _command(s)]
    return head


def _published(port: str | int | dict) -> tuple[str | None, str | None, str]:
    """(host IP, host port, container port) of one `ports` entry, short or long syntax."""
    if isinstance(port, dict):
        published = port.get("published")
        return (
            port.get("host_ip"),
            None if published is None else str(published),
            str(port["target"]),
        )
    parts = str(port).split("/")[0].rsplit(":", 2)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return None, None, parts[0]


def _resolved(value: str) -> str:
    """A value with its ``${...}`` interpolations replaced as Compose would (dummy secrets)."""
    return INTERPOLATION.sub(lambda match: DUMMY_SECRETS.get(match[1], "x"), value)


def _cluster_env_vars() -> dict[str, bool]:
    """Variables conf/cluster reads: name -> required (no default after a comma)."""
    found: dict[str, bool] = {}
    for path in sorted((PROJECT_ROOT / "conf/cluster").glob("*.yml")):
        for name, after in re.findall(r"\$\{oc\.env:([A-Za-z0-9_]+)([,}])", path.read_text()):
            found[name] = found.get(name, False) or after == "}"
    return found


def _serve_config(compose: dict) -> dict:
    return yaml.safe_load(compose["configs"]["serve_config"]["content"])


# --- checks the schema cannot do: each returns what is wrong, [] when nothing is ----------


def dependency_problems(compose: dict) -> list[str]:
    """depends_on names defined services, waits on health checks that exist, no cycle."""
    services = compose["services"]
    problems, graph = [], {}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        graph[name] = set(depends)
        for dep, how in depends.items():
            if dep not in services:
                problems.append(f"{name} depends on {dep}, which is not a service")
            elif how["condition"] == "service_healthy" and not services[dep].get("healthcheck"):
                problems.append(f"{name} waits for {dep} to be healthy: {dep} has no healthcheck")
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        problems.append(f"depends_on has a cycle: {error.args[1]}")
    return problems


def port_problems(compose: dict) -> list[str]:
    """Every published port listens on 127.0.0.1 only."""
    return [
        f"{name}: port {port!r} is not published on 127.0.0.1 only"
        for name, service in compose["services"].items()
        for port in service.get("ports", [])
        if _published(port)[0] != "127.0.0.1"
    ]


def secret_problems(compose: dict) -> list[str]:
    """Credentials come from the environment, required (``${NAME:?message}``), no default."""
    problems = []
    for where, value in _strings(compose):
        for name, rest in INTERPOLATION.findall(value):
            if SECRET_KEY.search(name) and not rest.startswith(":?"):
                problems.append(f"{where}: ${{{name}{rest}}} must be required (:?), no default")
        if "://" in value and "@" in value:
            userinfo = value.split("://", 1)[1].rsplit("@", 1)[0]
            password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
            if password and not password.startswith("${"):
                problems.append(f"{where}: a password written in a URL")
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_KEY.search(key) and not value.startswith("${"):
                problems.append(f"{name}: {key} is written in the file")
        command = _command(service)
        for flag, value in zip(command, command[1:], strict=False):
            if re.fullmatch(r"--\w*pass\w*", flag) and not value.startswith("${"):
                problems.append(f"{name}: {flag} is written in the file")
    return problems


def image_problems(compose: dict) -> list[str]:
    """Every image has a version tag (no `latest`); one service builds the project image."""
    problems, builders = [], []
    for name, service in compose["services"].items():
        image = service.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if "@sha256:" not in image and not re.search(r"\d+\.\d+", tag):
            problems.append(f"{name}: image {image!r} is not pinned to a version")
        if "build" in service:
            builders.append(name)
            if image != PROJECT_IMAGE:
                problems.append(f"{name} builds {image!r}, not {PROJECT_IMAGE}")
        elif image == PROJECT_IMAGE and service.get("pull_policy") != "never":
            problems.append(f"{name}: {PROJECT_IMAGE} is built here, never pulled")
    if len(builders) != 1:
        problems.append(f"one service builds {PROJECT_IMAGE}, not {builders}")
    return problems


def reference_problems(compose: dict) -> list[str]:
    """Named volumes and configs that services use are defined at the top level."""
    problems = []
    volumes, configs = compose.get("volumes") or {}, compose.get("configs") or {}
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.get("source") if isinstance(volume, dict) else volume.split(":")[0]
            if source and not source.startswith(("/", ".", "~")) and source not in volumes:
                problems.append(f"{name} mounts the volume {source}, which is not defined")
        for config in service.get("configs", []):
            source = config["source"] if isinstance(config, dict) else config
            if source not in configs:
                problems.append(f"{name} uses the config {source}, which is not defined")
    return problems


SEMANTIC_CHECKS = [
    dependency_problems,
    port_problems,
    secret_problems,
    image_problems,
    reference_problems,
]


# --- the schema ------------------------------------------------------------------------


def test_vendored_schema_is_complete_and_says_where_it_comes_from(schema):
    jsonschema.Draft7Validator.check_schema(schema)
    refs = {value for _, value in _strings(schema) if value.startswith("#/")}
    defined = {f"#/definitions/{name}" for name in schema["definitions"]}
    assert refs <= defined, f"unresolved $ref: {sorted(refs - defined)}"
    assert {"services", "volumes", "configs", "secrets", "networks"} <= set(schema["properties"])
    assert re.search(r"compose-spec/compose-spec .* commit [0-9a-f]{40}", schema["$comment"])


def test_compose_file_passes_the_compose_spec_schema(compose, validator):
    assert _schema_errors(validator, compose) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("servces", {}),  # typo of a top-level key
        ("services/ray-head/healthcheck/intervall", "10s"),
        ("services/ray-head/build/dockerfil", "Dockerfile"),
        ("services/ray-worker/depends_on/ray-head/condition", "service_ready"),
        ("services/redis/restart", 1),  # must be a string
        ("services/mlflow/ports/0", {"target": 5000, "host_ip": "127.0.0.1", "publish": 5000}),
        ("services/scorer/command", 5),
        ("volumes/data", "local"),  # a volume is a mapping (or empty)
        ("configs/serve_config/contents", "proxy_location: EveryNode"),
    ],
)
def test_schema_rejects_broken_copies(compose, validator, path, value):
    """The schema is strict enough to catch typos and wrong types in this file."""
    assert _schema_errors(validator, _set(compose, path, value))


# --- what the schema cannot see ----------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; Compose's YAML parser refuses the file."""

    def construct_mapping(self, node, deep=False):
        keys = [k.value for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
        if duplicates := sorted({k for k in keys if keys.count(k) > 1}):
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate keys {duplicates}", node.start_mark
            )
        return super().construct_mapping(node, deep)


def test_file_has_no_duplicate_keys():
    yaml.load(COMPOSE_FILE.read_text(), _StrictLoader)  # a SafeLoader
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate keys"):
        yaml.load("services:\n  a: {image: x}\n  a: {image: y}\n", _StrictLoader)


@pytest.mark.parametrize("check", SEMANTIC_CHECKS, ids=lambda check: check.__name__)
def test_compose_file_passes_the_semantic_checks(compose, check):
    assert check(compose) == []


@pytest.mark.parametrize(
    ("check", "path", "value"),
    [
        (
            dependency_problems,
            "services/scorer/depends_on/rediss",
            {"condition": "service_started"},
        ),
        (
            dependency_problems,
            "services/ray-head/depends_on",
            {"scorer": {"condition": "service_started"}},
        ),
        (dependency_problems, "services/postgres/healthcheck", None),  # mlflow waits for it
        (port_problems, "services/mlflow/ports/0", "5000:5000"),
        (port_problems, "services/mlflow/ports/0", "0.0.0.0:5000:5000"),
        (port_problems, "services/mlflow/ports/0", 5000),
        (port_problems, "services/mlflow/ports/0", {"target": 5000, "published": 5000}),
        (secret_problems, "services/postgres/environment/POSTGRES_PASSWORD", "mlflow"),
        (secret_problems, "services/scorer/environment/RAY_AUTH_TOKEN", "${RAY_AUTH_TOKEN:-dev}"),
        (
            secret_problems,
            "services/mlflow/environment/MLFLOW_BACKEND_STORE_URI",
            "postgresql://mlflow:mlflow@postgres/mlflow",
        ),
        (secret_problems, "services/redis/command/2", "hunter2"),
        (image_problems, "services/redis/image", "redis:latest"),
        (image_problems, "services/postgres/image", "postgres"),
        (image_problems, "services/scorer/pull_policy", "missing"),
        (reference_problems, "services/ray-worker/volumes/0", "dat:/app/data"),
        (reference_problems, "services/scorer/configs/0/source", "serve-config"),
    ],
)
def test_semantic_checks_catch_planted_mistakes(compose, check, path, value):
    assert check(_set(compose, path, value)), f"{check.__name__} missed {path} = {value!r}"


def test_every_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck") or {}
        assert check.get("test") and check["test"] != ["NONE"], name
        assert not check.get("disable"), name


def test_ray_nodes_get_every_variable_conf_cluster_reads(compose):
    variables = _cluster_env_vars()
    required = {name for name, needed in variables.items() if needed}
    assert {"MLFLOW_TRACKING_URI", "REDIS_URL", "RAY_ADDRESS"} <= required, variables
    nodes = _ray_nodes(compose)
    assert len(nodes) >= 2, "a head and a worker"
    for name, service in nodes.items():
        missing = required - set(_environment(service))
        assert not missing, f"{name}: conf/cluster reads {sorted(missing)}; set them"
        assert _environment(service)["RAY_AUTH_MODE"] == "token", name


def test_the_environment_points_at_the_services_of_the_file(compose):
    services = compose["services"]
    head_name, head = _ray_head(compose)
    mlflow_port = _flag(_command(services["mlflow"]), "--port")
    for name, service in _ray_nodes(compose).items():
        env = _environment(service)
        assert env["RAY_ADDRESS"] == f"{head_name}:{_flag(_command(head), '--port')}", name
        assert env["MLFLOW_TRACKING_URI"] == f"http://mlflow:{mlflow_port}", name
        redis = urlparse(_resolved(env["REDIS_URL"]))
        assert redis.hostname in services and redis.scheme == "redis", name
        if "--head" not in _command(service):
            assert _flag(_command(service), "--address") == env["RAY_ADDRESS"], name


def test_data_root_is_the_volume_every_ray_node_shares(compose):
    globals_file = yaml.safe_load((PROJECT_ROOT / "conf/cluster/globals.yml").read_text())
    variable = re.fullmatch(r"\$\{oc\.env:([A-Z0-9_]+)(,[^}]*)?\}", globals_file["data_root"])[1]
    mounts = []
    for name, service in _ray_nodes(compose).items():
        data_root = _environment(service)[variable]
        by_target = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert data_root in by_target, f"{name}: {variable} is not a mounted volume"
        mounts.append(by_target[data_root])
    assert len(set(mounts)) == 1 and mounts[0] in compose["volumes"], mounts


def test_mlflow_server_runs_a_version_the_project_supports(compose):
    mlflow = compose["services"]["mlflow"]
    version = re.match(r"v?(\d+\.\d+\.\d+)", mlflow["image"].rsplit(":", 1)[1])[1]
    (wanted,) = [
        Requirement(d) for d in PYPROJECT["project"]["dependencies"] if d.startswith("mlflow")
    ]
    assert Version(version) in wanted.specifier, f"MLflow {version} outside {wanted.specifier}"
    store = urlparse(_resolved(_environment(mlflow)["MLFLOW_BACKEND_STORE_URI"]))
    postgres_env = _environment(compose["services"]["postgres"])
    assert store.scheme.startswith("postgresql") and store.hostname == "postgres"
    assert store.username == postgres_env["POSTGRES_USER"]
    assert store.path.strip("/") == postgres_env["POSTGRES_DB"]
    artifacts = _flag(_command(mlflow), "--artifacts-destination")
    assert any(v.split(":")[1] == artifacts for v in mlflow["volumes"]), "artifacts on a volume"


def test_scorer_serve_config_is_a_valid_serve_config(compose):
    check_strict_serve_config(_serve_config(compose))


def test_scorer_deploys_the_application_of_the_serve_config(compose):
    app = check_same_application(_serve_config(compose))
    workdirs = re.findall(r"^WORKDIR (\S+)$", (PROJECT_ROOT / "Dockerfile").read_text(), re.M)
    assert app["args"]["project_path"] == workdirs[-1], "project_path: the image's project"
    scorer = compose["services"]["scorer"]
    (mounted,) = scorer["configs"]
    assert mounted["source"] == "serve_config"
    assert f"serve deploy {mounted['target']}" in " ".join(_command(scorer))
    head_name, head = _ray_head(compose)
    dashboard = f"http://{head_name}:{_flag(_command(head), '--dashboard-port')}"
    assert _environment(scorer)["RAY_DASHBOARD_ADDRESS"] == dashboard, "the head's dashboard"


def test_scorer_port_matches_the_serving_config(compose):
    """Serve always runs a proxy on the head node: the head publishes the scorer's port."""
    http = _serve_config(compose)["http_options"]
    local = yaml.safe_load((PROJECT_ROOT / "deploy/serve_config.yaml").read_text())
    assert http["port"] == local["http_options"]["port"], "deploy/serve_config.yaml's port"
    assert http["host"] == "0.0.0.0", "Serve must listen on the Compose network"
    head_name, head = _ray_head(compose)
    published = {_published(p)[1:] for p in head["ports"]}
    assert (str(http["port"]), str(http["port"])) in published, f"{head_name} must publish it"
    probe = " ".join(compose["services"]["scorer"]["healthcheck"]["test"])
    assert f"http://{head_name}:{http['port']}/health" in probe, "the scorer's health check"
    dashboard = _flag(_command(head), "--dashboard-port")
    assert (dashboard, dashboard) in published, "the dashboard's port"
    assert _flag(_command(head), "--num-cpus") == "0", "the head runs no tasks (as KubeRay's)"


def test_header_describes_every_service(compose):
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    for name in compose["services"]:
        assert re.search(rf"^#\s+{re.escape(name)}\s", header, re.M), f"{name} is not described"
    assert "docker compose up" in header
    for name in DUMMY_SECRETS:
        assert name in header, f"the header does not say how to set {name}"


# --- Docker's own loader, where it is installed ------------------------------------------


def _run(command: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def _compose_client() -> list[str] | None:
    """`docker compose` (v2 plugin) or a v2 `docker-compose`; None when neither is there."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        result = _run([*command, "version", "--short"])
        if result.returncode == 0 and int(result.stdout.strip().lstrip("v").split(".")[0]) >= 2:
            return command
    return None


def test_docker_compose_loads_the_file(tmp_path):
    """What `docker compose up` would load, without an engine; a missing secret stops it."""
    client = _compose_client()
    if client is None:
        pytest.skip("no Docker Compose v2 client here (the docker CLI has no compose plugin)")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), **DUMMY_SECRETS}
    command = [*client, "--project-directory", str(PROJECT_ROOT), "-f", str(COMPOSE_FILE)]
    result = _run([*command, "config", "-q"], env)
    assert result.returncode == 0, result.stderr
    del env["RAY_AUTH_TOKEN"]
    result = _run([*command, "config", "-q"], env)
    assert result.returncode != 0 and "RAY_AUTH_TOKEN" in result.stderr
