"""The parameter files' schemas: the shipped values pass; a wrong one is named with its
value and what is allowed, every wrong one at once."""

from __future__ import annotations

import copy

import pytest

from payments_ml.config import load_parameters
from payments_ml.parameters import ParameterError, check_parameters, parameter_errors
from tests.conftest import PROJECT_ROOT


@pytest.fixture(scope="module")
def shipped() -> dict:
    return load_parameters(PROJECT_ROOT)


@pytest.mark.parametrize("env", ["base", "cluster"])
def test_the_shipped_parameters_are_in_their_schemas(env, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")  # conf/cluster/feast.yml
    assert parameter_errors(load_parameters(PROJECT_ROOT, env)) == []


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("data_gen.n_days", -3, "data_gen.n_days = -3: must be >= 1"),
        ("data_gen.corruption_rate", 1.5, "data_gen.corruption_rate = 1.5: must be < 1.0"),
        ("data_gen.start_date", "2025-13-01", "data_gen.start_date = '2025-13-01': must be a date"),
        ("data_gen.fraud.rate", -0.1, "data_gen.fraud.rate = -0.1: must be >= 0.0"),
        ("features.partitions", 0, "features.partitions = 0: must be >= 1"),
        ("training.metric", "f1", "training.metric = 'f1': must be 'average_precision' or 'auc'"),
        ("training.every_days", 0, "training.every_days = 0: must be >= 1"),
        ("serving.port", 70000, "serving.port = 70000: must be <= 65535"),
        ("serving.num_replicas", 0, "serving.num_replicas = 0: must be 'auto' or a whole number"),
        ("monitoring.drift.min_rows", 0, "monitoring.drift.min_rows = 0: must be >= 1"),
        ("ingest.batch_rows", 0, "ingest.batch_rows = 0: must be >= 1"),
        ("run_date", "tomorrow", "run_date = 'tomorrow': must be a date, YYYY-MM-DD"),
        ("features.partitons", 4, "features.partitons: no such parameter"),
    ],
)
def test_a_wrong_value_is_named_with_what_is_allowed(shipped, key, value, said):
    params = copy.deepcopy(shipped)
    *path, last = key.split(".")
    section = params
    for part in path:
        section = section[part]
    section[last] = value
    errors = parameter_errors(params)
    assert len(errors) == 1 and errors[0].startswith(said), errors


def test_every_wrong_value_is_named_in_one_message(shipped):
    params = copy.deepcopy(shipped)
    params["data_gen"]["n_days"] = 0
    params["training"]["num_samples"] = 0
    with pytest.raises(ParameterError) as raised:
        check_parameters(params)
    message = raised.value.message
    assert "data_gen.n_days = 0: must be >= 1" in message
    assert "training.num_samples = 0: must be >= 1" in message
    assert "\n" not in message and message.endswith("Nothing was run.")


def test_checks_across_keys_name_both(shipped):
    params = copy.deepcopy(shipped)
    params["data_gen"].update(n_merchants=3, n_regions=5)
    assert parameter_errors(params) == [
        "data_gen: n_merchants (3) must be >= n_regions (5) so that every city has a store"
    ]
