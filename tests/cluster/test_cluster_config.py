"""conf/cluster: addresses and the storage root come from the environment."""

from __future__ import annotations

import pytest
import yaml

from payments_ml.config import catalog_paths, config_loader, project_settings
from tests.conftest import PROJECT_ROOT

ROOT = "s3://fraud-data/payments-ml"


@pytest.fixture
def cluster_config(monkeypatch):
    for name, value in {
        "RAY_ADDRESS": "ray-head:6379",
        "REDIS_URL": "redis://cache:6379/1",
        "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "PAYMENTS_ML_DATA_ROOT": ROOT,
    }.items():
        monkeypatch.setenv(name, value)
    return config_loader(PROJECT_ROOT, "cluster")


def test_every_path_moves_under_the_storage_root(cluster_config):
    paths = catalog_paths(cluster_config["catalog"])
    assert len(paths) > 15
    assert {name: p for name, p in paths.items() if not p.startswith(f"{ROOT}/")} == {}
    feast = cluster_config["parameters"]["feast"]
    assert feast["registry"] == f"{ROOT}/feast/registry.db"
    assert all(p.startswith(f"{ROOT}/") for p in feast["sources"].values()), feast["sources"]
    training = cluster_config["parameters"]["training"]
    assert training["tune_storage_path"] == f"{ROOT}/06_models/tune"
    assert training["num_samples"] == 10  # the rest of training stays as in base


def test_every_global_path_is_restated_for_the_cluster(cluster_config):
    """Kedro replaces `paths` whole: a path added to base but not here would be lost.
    Top-level keys the cluster does not set (label_delay_days) keep base's value."""
    base = yaml.safe_load((PROJECT_ROOT / "conf/base/globals.yml").read_text())
    cluster = yaml.safe_load((PROJECT_ROOT / "conf/cluster/globals.yml").read_text())
    assert set(cluster) <= set(base)
    for name in set(base) - set(cluster):
        assert cluster_config["globals"][name] == base[name], name
    assert set(cluster["paths"]) == set(base["paths"])
    for name, path in base["paths"].items():
        assert cluster["paths"][name] == path, name  # same layout below data_root


def test_without_a_storage_root_the_data_stay_in_the_project(monkeypatch):
    monkeypatch.delenv("PAYMENTS_ML_DATA_ROOT", raising=False)
    config = config_loader(PROJECT_ROOT, "cluster")
    assert config["globals"]["data_root"] == "data"
    assert config["globals"]["paths"]["alerts"] == "data/08_reporting/alerts.jsonl"


def test_the_cluster_streams_json_and_keeps_worker_output_on_the_nodes(cluster_config):
    ray = cluster_config["ray"]["ray"]
    assert ray["log_to_driver"] is False and ray["data"]["enable_progress_bars"] is False
    assert ray["data"]["use_datasource_v2"] is False  # base's other Ray Data settings stay
    formatter = cluster_config["logging"]["formatters"]["json"]["class"]
    assert formatter == "payments_ml.structured_logging.JsonFormatter"


def test_tools_outside_kedro_read_under_the_storage_root(monkeypatch, tmp_path):
    """The scorer's application, the replay and the Feast UI take their paths from the
    environment's configuration: data_root moves them all."""
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    for root, expected in [(ROOT, ROOT), (f"file://{tmp_path}/store", f"{tmp_path}/store")]:
        monkeypatch.setenv("PAYMENTS_ML_DATA_ROOT", root)
        settings = project_settings(PROJECT_ROOT, "cluster")
        datasets = settings["datasets"]
        assert datasets["raw_transactions"] == f"{expected}/01_raw/transactions"
        assert datasets["training_set"] == f"{expected}/05_model_input/training_set"
        assert settings["feast"]["registry"] == f"{expected}/feast/registry.db"
        assert settings["alerts_path"] == f"{expected}/08_reporting/alerts.jsonl"
    assert not (tmp_path / "store").exists()  # resolving a path creates nothing


def test_feast_takes_file_urls_as_local_paths(tmp_path):
    """fsspec-style file:// roots work for the catalog; Feast's registry needs a path."""
    from payments_ml.feature_store.store import repo_config  # noqa: PLC0415

    config = {
        "project": "payments_ml",
        "registry": f"file://{tmp_path}/feast/registry.db",
        "online_store": {"type": "redis", "connection_string": "redis://cache:6379/0"},
        "sources": {},
    }
    assert repo_config(config).registry.path == f"{tmp_path}/feast/registry.db"
    assert not (tmp_path / "feast").exists()  # open_store makes the folder, not the config
