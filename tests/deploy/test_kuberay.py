"""The KubeRay manifests (deploy/kuberay/), validated offline and against each other.

- ray.io/v1 objects: tests/deploy/schemas/kuberay-v1.json (KubeRay v1.7.0's fields, unknown
  fields rejected), whose Kubernetes core types (pod templates, Service, env) resolve to
  the strict schemas of the kubernetes-validate package;
- core objects (ConfigMap, PersistentVolumeClaim): kubernetes-validate, strict;
- the parts that must agree: image and Ray version, the Serve application and
  deploy/serve_config.yaml, ports, the environment conf/cluster reads, shared storage.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import importlib.resources
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import ray
import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.conftest import PROJECT_ROOT
from tests.deploy.serve_configs import check_same_application, check_strict_serve_config

KUBERAY = PROJECT_ROOT / "deploy/kuberay"
SCHEMA = Path(__file__).parent / "schemas/kuberay-v1.json"
# The oldest Kubernetes these manifests claim to fit (fields used exist since long before).
KUBERNETES_VERSION = "1.30.0"
HA_PROXY_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def _documents() -> dict[str, dict]:
    docs = {}
    for path in sorted(KUBERAY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return _documents()


@pytest.fixture(scope="module")
def validator_for():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    folder = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/_definitions.json"
    definitions = json.loads(
        importlib.resources.files(kubernetes_validate).joinpath(folder).read_text()
    )
    registry = DRAFT202012.create_resource(definitions) @ Registry()

    def validator(kind: str) -> jsonschema.Draft202012Validator:
        return jsonschema.Draft202012Validator(
            {"$ref": f"#/$defs/{kind}", **schema}, registry=registry
        )

    return validator


def _ray_clusters(docs) -> dict[str, dict]:
    return {
        "RayCluster": docs["RayCluster"]["spec"],
        "RayJob": docs["RayJob"]["spec"]["rayClusterSpec"],
        "RayService": docs["RayService"]["spec"]["rayClusterConfig"],
    }


def _ray_containers(docs) -> list[tuple[str, dict]]:
    """The Ray container (KubeRay's is the first) of every head and worker group."""
    found = []
    for kind, spec in _ray_clusters(docs).items():
        groups = [("head", spec["headGroupSpec"])] + [
            (g["groupName"], g) for g in spec.get("workerGroupSpecs", [])
        ]
        for name, group in groups:
            found.append((f"{kind}/{name}", group["template"]["spec"]["containers"][0]))
    return found


def _serve_config(docs) -> dict:
    return yaml.safe_load(docs["RayService"]["spec"]["serveConfigV2"])


def test_manifests_hold_the_expected_objects(docs):
    assert set(docs) == {"ConfigMap", "PersistentVolumeClaim", "RayCluster", "RayJob", "RayService"}


@pytest.mark.parametrize("kind", ["RayCluster", "RayJob", "RayService"])
def test_ray_objects_pass_the_kuberay_schema(docs, validator_for, kind):
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_for(kind).iter_errors(docs[kind])
    ]
    assert errors == []


@pytest.mark.parametrize("kind", ["ConfigMap", "PersistentVolumeClaim"])
def test_core_objects_pass_kubernetes_schema(docs, kind):
    kubernetes_validate.validate(docs[kind], KUBERNETES_VERSION, strict=True)


def _set(doc: dict, path: str, value) -> dict:
    broken = copy.deepcopy(doc)
    *parents, last = path.split("/")
    target = broken
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value
    return broken


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("RayCluster", "spec/headGroupSpec/rayStartParams/num-cpus", 0),  # must be a string
        ("RayCluster", "spec/workerGroupSpec", []),  # typo of workerGroupSpecs
        ("RayCluster", "spec/authOptions/mode", "tokens"),
        ("RayCluster", "spec/headGroupSpec/template/spec/containers/0/resource", {}),
        ("RayCluster", "spec/headGroupSpec/template/spec/containers/0/ports/0/containerPort", "x"),
        ("RayJob", "spec/submissionMode", "HttpMode"),
        ("RayJob", "spec/rayClusterSpec/workerGroupSpecs/0/minReplicas", -1),
        ("RayService", "spec/serveService/spec/ports/0/port", "8000"),
        ("RayService", "spec/rayClusterConfig/headGroupSpec/template/spec/volumes/0/pvc", {}),
        ("RayService", "spec/serveConfigV2", {"applications": []}),  # must be a YAML string
    ],
)
def test_schema_rejects_broken_copies(docs, validator_for, kind, path, value):
    """The validation is strict enough to catch typos and wrong types in these files."""
    assert not validator_for(kind).is_valid(_set(docs[kind], path, value))


def test_ray_containers_run_the_project_image_and_ray(docs):
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    for where, container in _ray_containers(docs):
        assert container["image"] == f"payments-ml:{version}", where
    for kind, spec in _ray_clusters(docs).items():
        assert spec["rayVersion"] == ray.__version__, kind


def test_ray_clusters_use_token_authentication(docs):
    for kind, spec in _ray_clusters(docs).items():
        assert spec["authOptions"]["mode"] == "token", kind
    for where, container in _ray_containers(docs):
        names = {e["name"] for e in container["env"]}
        assert not names & {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"}, f"{where}: authOptions sets it"


def test_every_ray_container_has_the_same_environment_and_storage(docs):
    config = docs["ConfigMap"]["metadata"]["name"]
    claim = docs["PersistentVolumeClaim"]["metadata"]["name"]
    data_root = docs["ConfigMap"]["data"]["PAYMENTS_ML_DATA_ROOT"]
    for kind, spec in _ray_clusters(docs).items():
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            pod = group["template"]["spec"]
            volumes = {v["name"]: v for v in pod["volumes"]}
            container = pod["containers"][0]
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert HA_PROXY_ENV.items() <= env.items(), kind
            sources = container["envFrom"]
            assert sources[0] == {"configMapRef": {"name": config}}, kind
            assert sources[1]["secretRef"]["optional"] is True, kind
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert data_root in mounts, f"{kind}: PAYMENTS_ML_DATA_ROOT is not the mounted volume"
            volume = volumes[mounts[data_root]]
            assert volume["persistentVolumeClaim"]["claimName"] == claim, kind
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] != 0
    assert docs["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_ray_containers_get_guaranteed_resources(docs):
    """requests == limits: Ray sizes itself from the limits; no CPU throttling surprises."""
    for where, container in _ray_containers(docs):
        resources = container["resources"]
        assert resources["requests"] == resources["limits"], where
        assert {"cpu", "memory"} <= set(resources["limits"]), where


def test_head_exposes_rays_ports_and_runs_no_tasks(docs):
    for kind, spec in _ray_clusters(docs).items():
        head = spec["headGroupSpec"]
        ports = {
            p["name"]: p["containerPort"]
            for p in head["template"]["spec"]["containers"][0]["ports"]
        }
        assert ports == {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": 8000}
        assert head["rayStartParams"]["num-cpus"] == "0", kind
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"]


def _cluster_env_vars() -> dict[str, bool]:
    """Variables conf/cluster reads: name -> required (no default after the comma)."""
    found: dict[str, bool] = {}
    for path in (PROJECT_ROOT / "conf/cluster").glob("*.yml"):
        for name, default in re.findall(r"\$\{oc\.env:([A-Z0-9_]+)(,[^}]*)?\}", path.read_text()):
            found[name] = found.get(name, False) or not default
    return found


def test_pods_provide_every_variable_the_cluster_configuration_needs(docs):
    provided = set(docs["ConfigMap"]["data"])
    needed = {name for name, required in _cluster_env_vars().items() if required}
    # RAY_ADDRESS (conf/cluster/ray.yml) is set by Ray itself for job drivers (RayJob,
    # `ray job submit`); the scorer never reads ray.yml.
    missing = needed - provided - {"RAY_ADDRESS"}
    assert not missing, f"conf/cluster reads {sorted(missing)}: add them to config.yaml"
    assert {"MLFLOW_TRACKING_URI", "REDIS_URL"} <= needed


def test_data_root_variable_is_the_one_conf_cluster_reads(docs):
    globals_file = PROJECT_ROOT / "conf/cluster/globals.yml"
    data_root = yaml.safe_load(globals_file.read_text())["data_root"]
    name = re.fullmatch(r"\$\{oc\.env:([A-Z0-9_]+)(,[^}]*)?\}", data_root)[1]
    assert name in docs["ConfigMap"]["data"]


def test_rayjob_runs_on_the_same_cluster_as_the_raycluster(docs):
    assert docs["RayJob"]["spec"]["rayClusterSpec"] == docs["RayCluster"]["spec"]


def test_rayjob_names_only_existing_pipelines(docs):
    entrypoint = docs["RayJob"]["spec"]["entrypoint"]
    named = re.findall(r"--pipelines (\w+)", entrypoint)
    assert named == ["daily"]
    for name in named:
        assert (PROJECT_ROOT / f"src/payments_ml/pipelines/{name}/pipeline.py").is_file(), name
    assert docs["RayJob"]["spec"]["submissionMode"] == "HTTPMode"
    assert docs["RayJob"]["spec"]["shutdownAfterJobFinishes"] is True


def _run_entrypoint(docs, tmp_path: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    """The RayJob entrypoint under /bin/sh (as Ray's job manager runs it), fake kedro."""
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    kedro = bin_dir / "kedro"
    kedro.write_text(
        '#!/bin/sh\necho "kedro $*" >> "$CALLS"\n'
        'case "$*" in *"$FAIL_ON"*) [ -n "$FAIL_ON" ] && exit 3;; esac\nexit 0\n'
    )
    kedro.chmod(0o755)
    # `cd` is a regular built-in: a function of the same name takes precedence (POSIX).
    script = 'cd() { echo "cd $*" >> "$CALLS"; }\n' + docs["RayJob"]["spec"]["entrypoint"]
    runtime_env = yaml.safe_load(docs["RayJob"]["spec"]["runtimeEnvYAML"])["env_vars"]
    full_env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "CALLS": str(log),
        "FAIL_ON": "",
        **runtime_env,
        **env,
    }
    result = subprocess.run(["/bin/sh", "-c", script], env=full_env, timeout=30, check=False)
    return result.returncode, log.read_text().splitlines() if log.exists() else []


def test_rayjob_entrypoint_runs_the_daily_pipeline_for_yesterday(docs, tmp_path):
    before = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    code, calls = _run_entrypoint(docs, tmp_path, {})
    after = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    assert code == 0
    assert calls[0] == "cd /app"
    day = calls[1].rsplit("=", 1)[1]
    assert day in {before, after}
    assert calls[1:] == [f"kedro run --env cluster --pipelines daily --params run_date={day}"]


def test_rayjob_entrypoint_reruns_a_given_day(docs, tmp_path):
    code, calls = _run_entrypoint(docs, tmp_path, {"RUN_DATE": "2025-06-11"})
    assert code == 0
    assert calls[1].endswith("--params run_date=2025-06-11")


def test_rayjob_entrypoint_fails_when_the_night_fails(docs, tmp_path):
    code, calls = _run_entrypoint(docs, tmp_path, {"FAIL_ON": "daily"})
    assert code != 0, "a failed night must fail the RayJob"
    assert calls[-1].startswith("kedro run --env cluster --pipelines daily")


def test_serve_config_v2_is_a_valid_serve_config(docs):
    check_strict_serve_config(_serve_config(docs))


def test_rayservice_serves_the_application_of_the_serve_config(docs):
    app = check_same_application(_serve_config(docs))
    workdirs = re.findall(r"^WORKDIR (\S+)$", (PROJECT_ROOT / "Dockerfile").read_text(), re.M)
    assert app["args"]["project_path"] == workdirs[-1], "project_path: the image's project"
    module, attribute = app["import_path"].split(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_rayservice_ports_agree(docs):
    config = _serve_config(docs)
    port = config["http_options"]["port"]
    assert config["http_options"]["host"] == "0.0.0.0"
    service = docs["RayService"]["spec"]["serveService"]["spec"]["ports"]
    assert [(p["port"], p["targetPort"]) for p in service] == [(port, port)]
    for where, container in _ray_containers(docs):
        if where.startswith("RayService"):
            assert {"name": "serve", "containerPort": port} in container["ports"], where


def test_rayservice_workers_can_hold_the_replicas(docs):
    (app,) = _serve_config(docs)["applications"]
    (deployment,) = app["deployments"]
    (workers,) = docs["RayService"]["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    cpus = float(workers["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert deployment["ray_actor_options"]["num_cpus"] <= cpus
    per_node = deployment.get("max_replicas_per_node", deployment["num_replicas"])
    nodes_needed = -(-deployment["num_replicas"] // per_node)
    assert workers["minReplicas"] >= nodes_needed, "the replicas need that many workers at once"
