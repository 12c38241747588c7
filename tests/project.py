"""Scratch copies of the project and the real `kedro run` CLI in them (shared by tests)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from payments_ml.config import project_settings
from tests.conftest import PROJECT_ROOT

SMALL = (
    "data_gen.n_customers=300,data_gen.n_merchants=80,data_gen.n_regions=5,"
    "data_gen.n_days=4,data_gen.start_date=2025-06-09,data_gen.corruption_rate=0.01"
)

TRAIN_SMALL = (
    "data_gen.n_customers=1500,data_gen.n_merchants=200,data_gen.n_regions=6,"
    "data_gen.n_days=30,data_gen.start_date=2025-05-01,"
    "training.train_days=14,training.valid_days=4,training.test_days=5,"
    "training.num_samples=2,training.num_boost_round=40,training.report_every=5,"
    "training.card_precision_k=20"
)


def scratch_project(root: Path) -> Path:
    """A copy of the project's code and configuration, without data or conf/local.

    Its local Ray clusters start without a dashboard: port 8265 may belong to the head
    `make run` left up, and the suite must pass beside it.
    """
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "logs").mkdir()  # conf/logging.yml's full log
    (root / "conf" / "local" / "ray.yml").write_text("ray:\n  include_dashboard: false\n")
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    shutil.copytree(
        PROJECT_ROOT / "src",
        root / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment for a project subprocess: no telemetry, and no Ray or
    MLflow address or logging configuration inherited (the project's own configuration
    decides), plus ``extra``."""
    env = os.environ | {
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    inherited = ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    for name in (*inherited, "KEDRO_LOGGING_CONFIG"):
        env.pop(name, None)
    return env | extra


def kedro(project: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`kedro run` in ``project``; a local Ray cluster unless ``env`` gives RAY_ADDRESS."""
    env = clean_env(COLUMNS="200") | (env or {})
    kedro_bin = Path(sys.executable).with_name("kedro")
    return subprocess.run(
        [str(kedro_bin), "run", *args],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextlib.contextmanager
def in_process_session(project: Path, runtime_params: dict, ray_session) -> Iterator[Any]:
    """A Kedro session of ``project`` in this process, as `kedro run` opens one: the
    project's catalog, parameters, hooks and kedro-mlflow, on the test session's Ray
    cluster (no second interpreter); MLflow's process-wide state restored afterwards."""
    import mlflow  # noqa: PLC0415
    from kedro.framework.project import configure_project  # noqa: PLC0415
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from mlflow.tracking._model_registry import utils as registry  # noqa: PLC0415
    from mlflow.tracking._tracking_service import utils as tracking  # noqa: PLC0415

    from payments_ml.mlflow_hook import mlflow_hook  # noqa: PLC0415

    # The URIs as set (None: MLflow's default), not as resolved against the working folder.
    previous = tracking._tracking_uri, registry._registry_uri
    data = ray_session.data.DataContext.get_current()
    reader = data.use_datasource_v2
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME"):
            patch.setenv(name, "")
            patch.delenv(name)
        patch.chdir(project)  # relative data paths and ${project_path:} resolve here
        configure_project("payments_ml", preserve_logging=True)
        # kedro-mlflow's hook is one object per process and keeps the last run's id when
        # a pipeline is not tracked (data_gen): a CLI process runs one session, not many.
        mlflow_hook.run_id = None
        # ray.yml's Ray Data settings, which the Ray hook applies only to a cluster it starts.
        data.use_datasource_v2 = False
        try:
            with KedroSession.create(project_path=project, runtime_params=runtime_params) as s:
                yield s
        finally:
            # kedro-mlflow leaves the run on MLflow's stack (a CLI process ends it at exit).
            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(previous[0])
            mlflow.set_registry_uri(previous[1])
            data.use_datasource_v2 = reader


def sorted_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame`` sorted by ``keys``, Hive partition columns (categorical) as strings."""
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(str)
    return frame.sort_values(keys, ignore_index=True)


@functools.cache
def _dataset_paths(project: Path) -> dict[str, str]:
    """A project's catalog paths, read once per test session (loading its configuration
    takes a third of a second; a test reads a dozen datasets of the same project)."""
    return project_settings(project)["datasets"]


def read_dataset(project: Path, name: str, keys: list[str]) -> pd.DataFrame:
    """The catalog dataset ``name`` of ``project`` (its `base` configuration), sorted."""
    return sorted_rows(pd.read_parquet(_dataset_paths(Path(project).resolve())[name]), keys)


def assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every row and value: counts, ids, times and labels exactly; floats (amount sums and
    averages) to 1e-9 relative, the rounding of running sums that start on another day."""
    assert len(expected) > 0 and list(got.columns) == list(expected.columns)
    floats = [c for c in expected.columns if pd.api.types.is_float_dtype(expected[c])]
    exact = [c for c in expected.columns if c not in floats]
    pd.testing.assert_frame_equal(got[exact], expected[exact], check_exact=True)
    pd.testing.assert_frame_equal(got[floats], expected[floats], rtol=1e-9, atol=0)
