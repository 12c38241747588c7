"""Feast's MLflow header plugin is imported on first use, not at every run's start."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # Only what the code printed (importing Kedro may log to stdout first).
    return "\n".join(line[3:] for line in result.stdout.splitlines() if line.startswith(">> "))


def test_the_header_registry_no_longer_imports_feast_until_a_request_asks():
    out = _run(
        """
        import sys
        import payments_ml.settings  # noqa: F401  (what `kedro run` imports first)
        from mlflow.tracking.request_header import registry
        print(">>", "feast" in sys.modules)
        names = [type(p).__qualname__ for p in registry._request_header_provider_registry]
        print(">>", any("feast" in n for n in names))
        headers = registry.resolve_request_headers()  # a request: Feast's provider loads
        print(">>", "feast" in sys.modules, headers.get("Authorization"))
        from feast.infra.data_sources.mlflow.auth import mlflow_token_scope
        with mlflow_token_scope("t0ken"):  # and then adds its header as it always did
            print(">>", registry.resolve_request_headers().get("Authorization"))
        """
    )
    assert out.splitlines() == ["False", "True", "True None", "Bearer t0ken"]


def test_without_the_deferral_the_registry_imports_feast():
    """The cost this avoids is real (and the test above would notice Feast dropping it)."""
    out = _run(
        """
        import sys
        from mlflow.tracking.request_header import registry  # noqa: F401
        print(">>", "feast" in sys.modules)
        """
    )
    assert out == "True"


def test_a_run_is_named_after_its_pipelines_and_day():
    import datetime as dt  # noqa: PLC0415

    from payments_ml.mlflow_hook import run_name  # noqa: PLC0415

    today = dt.date(2026, 12, 5)
    assert run_name({"pipeline_names": ["training"]}, today) == "training 2026-12-05"
    assert run_name({"pipeline_names": None}, today) == "kedro run 2026-12-05"
    daily = {"pipeline_names": ["daily"], "runtime_params": {"run_date": "2025-05-01"}}
    assert run_name(daily, today) == "daily 2025-05-01"
    both = {"pipeline_names": ["features", "data_gen"]}
    assert run_name(both, today) == "data_gen+features 2026-12-05"
