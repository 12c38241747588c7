"""The model watch against a real MLflow registry (SQLite in a temporary folder): a
replica follows its alias forwards (a promotion) and back (a rollback), keeps its model
when the named version cannot be loaded, and does not watch a pinned version."""

from __future__ import annotations

import asyncio
import gc
import time

import pytest

from payments_ml.serving.app import FraudScorer, MlflowModelLoader, model_source
from payments_ml.serving.model_watch import ModelWatch


@pytest.fixture
def champion(registry):
    """The registry's client; ``champion`` back on version 1 after the test."""
    client = registry["client"]
    yield client
    client.set_registered_model_alias("fraud_model", "champion", "1")


def _watch(registry, **options) -> tuple[ModelWatch, list]:
    loader = MlflowModelLoader(registry["uri"])
    installed, failed = [], []
    watch = ModelWatch(
        loader,
        loader(),
        options.pop("interval_s", 60),
        on_switch=installed.append,
        on_failure=failed.append,
        start=options.pop("start", False),
    )
    return watch, [installed, failed]


def test_the_watch_follows_the_alias_to_a_new_version_and_back(champion, registry):
    watch, (installed, _) = _watch(registry)
    assert watch.model.version == "1"
    assert watch.check() is False and installed == []  # nothing moved

    champion.set_registered_model_alias("fraud_model", "champion", "2")
    assert watch.check() is True
    assert [m.version for m in installed] == ["2"] and watch.model is installed[0]
    assert watch.model.thresholds == {"review": 0.04, "decline": 0.4}  # version 2's own

    champion.set_registered_model_alias("fraud_model", "champion", "1")  # a rollback
    assert watch.check() is True
    assert [m.version for m in installed] == ["2", "1"]
    assert watch.model.thresholds == {"review": 0.05, "decline": 0.5}
    status = watch.status()
    assert status["switches"] == 2 and status["error"] is None
    assert status["source"] == "models:/fraud_model@champion" and status["checked_at"]


def test_a_version_that_cannot_be_loaded_keeps_the_model_in_use(champion, registry):
    watch, (installed, failed) = _watch(registry)
    broken = champion.create_model_version(
        "fraud_model", source=(registry["folder"] / "artifacts" / "no-such-model").as_uri()
    ).version
    champion.set_registered_model_alias("fraud_model", "champion", broken)

    assert watch.check() is False
    assert watch.model.version == "1" and installed == []
    assert failed == [str(broken)]
    assert f"could not load version {broken}" in watch.error
    assert "still serving version 1" in watch.error
    assert watch.status()["error"] == watch.error

    champion.set_registered_model_alias("fraud_model", "champion", "1")  # moved back
    assert watch.check() is False and watch.error is None


def test_an_alias_that_cannot_be_read_keeps_the_model_and_says_why(registry):
    loader = MlflowModelLoader(registry["uri"])
    model = loader()
    missing = MlflowModelLoader(registry["uri"], "models:/fraud_model@no_such_alias")
    watch = ModelWatch(missing, model, 60, on_switch=lambda m: None, start=False)
    assert watch.check() is False
    assert watch.model is model
    assert watch.error.startswith("could not read models:/fraud_model@no_such_alias")


def test_the_thread_switches_within_its_interval_plus_the_load(champion, registry):
    watch, (installed, _) = _watch(registry, interval_s=0.2, start=True)
    try:
        moved = time.monotonic()
        champion.set_registered_model_alias("fraud_model", "champion", "2")
        while watch.model.version != "2" and time.monotonic() - moved < 10:
            time.sleep(0.05)
        assert watch.model.version == "2", watch.error
        assert [m.version for m in installed] == ["2"]
    finally:
        watch.stop()


def test_a_pinned_version_is_loaded_and_not_watched(registry):
    pinned = MlflowModelLoader(registry["uri"], "models:/fraud_model/2")
    assert pinned.follows_alias is False and model_source(pinned) is None
    assert pinned().version == "2"
    aliased = MlflowModelLoader(registry["uri"])
    assert aliased.follows_alias is True and model_source(aliased) is aliased
    with pytest.raises(ValueError, match="model_watch_s must be > 0"):
        ModelWatch(aliased, pinned(), 0, on_switch=lambda m: None, start=False)


def _replica(loader, repo, source, watch_s=60):
    """A FraudScorer built in this process (no Serve): its model, store and routes. The
    class itself: Serve's ingress wrapper (``func_or_class``) has an async constructor
    and derives from it."""
    replica_class = FraudScorer.func_or_class.__bases__[0]
    return replica_class(
        loader,
        repo["config"],
        ray_metrics=False,
        settings={"model_watch_s": watch_s},
        model_source=source,
    )


def test_a_replica_answers_health_metrics_and_scores_with_the_new_version(
    champion, registry, replay_day
):
    loader = MlflowModelLoader(registry["uri"])
    replica = _replica(loader, replay_day, model_source(loader))
    try:
        rows = replay_day["today"].head(3)
        assert {a["model_version"] for a in replica.scorer.score(rows).answers()} == {"1"}
        champion.set_registered_model_alias("fraud_model", "champion", "2")
        assert replica.model_watch.check() is True

        scored = replica.scorer.score(replay_day["today"].iloc[3:6])
        assert {a["model_version"] for a in scored.answers()} == {"2"}
        health = asyncio.run(replica.health())
        assert health["model_version"] == "2" and health["thresholds"]["decline"] == 0.4
        assert health["model"]["switches"] == 1 and health["model"]["watch_s"] == 60
        data = asyncio.run(replica.dashboard_data())
        assert data["model_version"] == "2" and data["model"]["version"] == "2"
        text = asyncio.run(replica.metrics_text()).body.decode()
        assert 'scorer_model_info{version="2"} 1.0' in text
        assert 'version="1"' not in text
        assert "scorer_model_switches_total 1.0" in text
    finally:
        replica.__del__()
        gc.unfreeze()


def test_a_replica_of_a_pinned_version_has_no_watch(registry, replay_day):
    pinned = MlflowModelLoader(registry["uri"], "models:/fraud_model/2")
    replica = _replica(pinned, replay_day, model_source(pinned))
    try:
        assert replica.model_watch is None
        model = asyncio.run(replica.health())["model"]
        assert model["version"] == "2" and model["watch_s"] is None
        assert model["source"] == "models:/fraud_model/2"
    finally:
        replica.__del__()
        gc.unfreeze()
