"""One small world's history and seven nights of `kedro run --pipelines daily`, built
once per test session and shared: the seven-night test compares the nights with a full
build; the Airflow test runs its three nights from the same history, under Airflow, and
compares them with the first three.

The world is a parameters file in the project's conf/local and conf/cluster (not runtime
parameters), so that a copy of the project run by another process (Airflow's tasks) runs
the same world.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

from tests.project import in_process_session, scratch_project

START = dt.date(2025, 3, 1)
HISTORY, NIGHTS = 60, 7
NIGHT_DAYS = [str(START + dt.timedelta(days=HISTORY + i)) for i in range(NIGHTS)]
AFTER = 3  # the nights the Airflow test runs; a copy of the project is kept after them
WORLD = f"""\
data_gen:
  n_customers: 300
  n_merchants: 60
  n_regions: 4
  n_days: {HISTORY}
  start_date: "{START}"
  corruption_rate: 0.01
training:
  every_days: null
  train_days: 14
  valid_days: 4
  test_days: 5
  num_samples: 1
  num_boost_round: 30
  report_every: 5
  card_precision_k: 20
monitoring:
  drift:
    min_rows: 50
"""


def world_project(root: Path) -> Path:
    """A scratch project whose conf/local and conf/cluster hold the small world."""
    project = scratch_project(root)
    for env in ("local", "cluster"):
        (project / "conf" / env / "parameters_world.yml").write_text(WORLD)
    return project


def run(project: Path, ray_session, pipeline: str, **params) -> float:
    """`kedro run --pipelines <pipeline> --params <params>`, in this process; seconds."""
    started = time.perf_counter()
    with in_process_session(project, params, ray_session) as session:
        session.run(pipeline_names=[pipeline])
    return time.perf_counter() - started


def build_history(root: Path, ray_session) -> Path:
    """The history: data_gen and features over HISTORY days, in ``root/history``."""
    history = world_project(root / "history")
    run(history, ray_session, "data_gen")
    run(history, ray_session, "features")
    return history


def build_nights(history: Path, root: Path, ray_session) -> dict:
    """NIGHTS daily runs on a copy of ``history`` (``nightly``), with a copy after the
    first AFTER (``after``) and each night's seconds (``times``)."""
    nightly = root / "nightly"
    shutil.copytree(history, nightly)
    times = {}
    for i, night in enumerate(NIGHT_DAYS):
        times[night] = round(run(nightly, ray_session, "daily", run_date=night), 2)
        if i + 1 == AFTER:
            shutil.copytree(nightly, root / "after")
    return {"after": root / "after", "nightly": nightly, "times": times}
