"""The Ray hook: one session per run, reused when already open, closed only by its owner."""

from __future__ import annotations

import pytest

from payments_ml.hooks import RayHook, connect_ray


def test_an_open_session_is_reused_and_left_open(ray_session):
    hook = RayHook()
    hook._config = {"address": None, "num_cpus": 2}
    hook.before_pipeline_run()
    assert hook._owns_session is False
    hook.on_pipeline_error()
    assert ray_session.is_initialized()


def test_connect_reports_reuse(ray_session):
    assert connect_ray({"address": "auto"}) is False


def test_unknown_ray_data_settings_are_named(ray_session):
    from payments_ml.hooks import configure_ray_data  # noqa: PLC0415

    with pytest.raises(ValueError, match="unknown DataContext field 'no_such_knob'"):
        configure_ray_data({"no_such_knob": 1})


def test_a_busy_dashboard_port_says_how_to_join_the_running_cluster(monkeypatch):
    """`kedro run` beside `make run`'s head: the message names RAY_ADDRESS and make stop."""
    import ray  # noqa: PLC0415

    def busy(**kwargs):
        raise ValueError("Failed to bind to 127.0.0.1:8265 because it's already occupied.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", busy)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(ConnectionError, match=r"RAY_ADDRESS=127\.0\.0\.1:6379.*make stop"):
        connect_ray({"address": None, "dashboard_port": 8265})
