"""Configuration: an environment overrides single keys, and paths resolve to the project."""

from __future__ import annotations

import pytest

from payments_ml.config import config_loader, project_settings
from tests.conftest import PROJECT_ROOT


@pytest.fixture
def cluster_env(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    return config_loader(PROJECT_ROOT, "cluster")


def test_cluster_keeps_base_settings_it_does_not_override(cluster_env):
    feast = cluster_env["parameters"]["feast"]
    assert feast["online_store"]["type"] == "redis"
    assert feast["online_store"]["connection_string"] == "redis://cache:6379/1"
    assert feast["project"] == "payments_ml" and "customer_snapshots" in feast["sources"]
    assert cluster_env["parameters"]["training"]["registry"]["model_name"] == "fraud_model"
    assert cluster_env["ray"]["ray"]["address"] == "ray://head:10001"
    assert cluster_env["ray"]["ray"]["data"]["use_datasource_v2"] is False
    mlflow = cluster_env["mlflow"]
    assert mlflow["server"]["mlflow_tracking_uri"] == "http://mlflow:5000"
    assert mlflow["server"]["mlflow_registry_uri"] == "http://mlflow:5000"
    assert mlflow["tracking"]["experiment"]["name"] == "payments-ml"
    assert mlflow["tracking"]["experiment"]["create_experiment_kwargs"]["artifact_location"] is None


def test_cluster_feast_config_drops_the_sqlite_path(cluster_env):
    from payments_ml.feature_store.store import repo_config  # noqa: PLC0415

    online = repo_config(cluster_env["parameters"]["feast"]).online_store
    assert online.type == "redis" and online.connection_string == "cache:6379,db=1"


def test_embedded_mlflow_store_is_under_the_project(monkeypatch):
    monkeypatch.chdir(PROJECT_ROOT / "src")  # kedro finds the project from a subfolder too
    config = config_loader(PROJECT_ROOT)["mlflow"]
    uri = config["server"]["mlflow_tracking_uri"]
    assert uri == f"sqlite:///{PROJECT_ROOT.as_posix()}/data/mlflow/mlflow.db"
    assert config["server"]["mlflow_registry_uri"] == uri


def test_another_projects_settings_name_its_own_mlflow_store(tmp_path, monkeypatch):
    """project_settings(P) from another project's folder (a replay, the rollout CLI, a
    test): the store is P's, not the working folder's."""
    from tests.project import scratch_project  # noqa: PLC0415

    other = scratch_project(tmp_path / "other").resolve()
    monkeypatch.chdir(PROJECT_ROOT)
    settings = project_settings(other)
    assert settings["tracking_uri"] == f"sqlite:///{other.as_posix()}/data/mlflow/mlflow.db"
    assert settings["registry_uri"] == settings["tracking_uri"]
    here = config_loader(PROJECT_ROOT)["mlflow"]["server"]["mlflow_tracking_uri"]
    assert here == f"sqlite:///{PROJECT_ROOT.as_posix()}/data/mlflow/mlflow.db"


@pytest.mark.parametrize("env", ["base", "cluster"])
def test_one_label_delay_sets_every_pipelines(env, cluster_env):
    """globals.yml's label_delay_days reaches all four keys; one runtime value moves them."""
    from payments_ml.config import LABEL_DELAY_KEYS, label_delays, load_parameters  # noqa: PLC0415

    def delays(params) -> set:
        found = label_delays(params)
        assert len(found) == len(LABEL_DELAY_KEYS), found  # every key present
        return set(found.values())

    assert delays(load_parameters(PROJECT_ROOT, env)) == {7}
    assert delays(load_parameters(PROJECT_ROOT, env, {"label_delay_days": 2})) == {2}


def test_label_delays_that_differ_stop_the_run_naming_them():
    from payments_ml.config import check_label_delay, load_parameters  # noqa: PLC0415

    params = load_parameters(PROJECT_ROOT, "base", {"training": {"delay_days": 2}})
    with pytest.raises(ValueError, match=r"features.label_delay_days=7, training.delay_days=2"):
        check_label_delay(params)
    check_label_delay(load_parameters(PROJECT_ROOT))  # the shipped values agree
    check_label_delay({"training": {"delay_days": 3}})  # one key alone: nothing to compare


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data/x.db", "{root}/data/x.db"),
        ("file://{root}/y/z", "{root}/y/z"),
        ("s3://bucket/key", "s3://bucket/key"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("/abs/../abs/p", "/abs/p"),
        (None, None),
        ("", ""),
    ],
)
def test_one_rule_makes_paths_absolute(tmp_path, path, expected):
    from payments_ml.config import absolute_path  # noqa: PLC0415

    root = tmp_path.resolve().as_posix()
    given = path.format(root=root) if path else path
    assert absolute_path(given, root) == (expected.format(root=root) if expected else expected)
    assert list(tmp_path.iterdir()) == []  # nothing created
